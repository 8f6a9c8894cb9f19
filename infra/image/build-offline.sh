#!/usr/bin/env bash
# infra/image/build-offline.sh — build the repository's Dockerfile where no container registry is
# reachable but Debian's package mirror and static.rust-lang.org are (this project's build
# machines), with Debian's podman and no daemon.
#
#   infra/image/build-offline.sh [TAG]        # default tag: localhost/cutover:dev
#
# 1. bootstraps a Debian bookworm root filesystem from deb.debian.org (mmdebstrap) and imports
#    it as localhost/debian:bookworm-local;
# 2. builds localhost/rust:1.95-slim-bookworm from it the way the official rust image is made
#    (Debian + rustup, minimal profile), adding the CA certificates the host trusts from
#    /usr/local/share/ca-certificates (an HTTPS-intercepting egress proxy's CA, if any) so
#    cargo can reach crates.io;
# 3. builds the Dockerfile with RUST_IMAGE=localhost/rust:1.95-slim-bookworm;
# 4. checks the runtime image without a container runtime: mounts it and runs
#    `cutover --version` in a chroot as uid 65532, with nothing but the image's files.
#
# RUN steps use `--isolation chroot`: on these machines crun can't start containers
# ("setrlimit RLIMIT_NPROC: Operation not permitted"), so `podman run` fails while builds work.
# Steps 1-2 are skipped when the images exist. Needs root, podman (buildah), mmdebstrap.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

tag=${1:-localhost/cutover:dev}
base=localhost/debian:bookworm-local
rust=localhost/rust:1.95-slim-bookworm
say() { printf '[build-offline] %s\n' "$*" >&2; }

for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || { say "$tool not found: apt-get install podman mmdebstrap"; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! podman image exists "$base"; then
  say "1/4 bootstrapping Debian bookworm from deb.debian.org"
  mmdebstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs.tar" \
    http://deb.debian.org/debian
  podman import --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$work/rootfs.tar" "$base"
fi

if ! podman image exists "$rust"; then
  say "2/4 building $rust (rustup 1.95.0, minimal profile)"
  mkdir -p "$work/rust/ca"
  cp /usr/local/share/ca-certificates/*.crt "$work/rust/ca/" 2>/dev/null || true
  cat >"$work/rust/Containerfile" <<EOF
FROM $base
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev \\
 && update-ca-certificates && rm -rf /var/lib/apt/lists/* \\
 && curl --proto '=https' --tlsv1.2 -sSf -o /tmp/rustup-init \\
      https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init \\
 && chmod +x /tmp/rustup-init \\
 && /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain 1.95.0 \\
 && rm /tmp/rustup-init && rustc --version && cargo --version
EOF
  podman build --isolation chroot --network host -t "$rust" "$work/rust"
fi

say "3/4 building $tag from ./Dockerfile"
podman build --isolation chroot --network host --build-arg "RUST_IMAGE=$rust" -t "$tag" .

say "4/4 checking the runtime image (chroot, uid 65532)"
ctr=$(podman create "$tag")
trap 'podman rm -f "$ctr" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
root=$(podman mount "$ctr")
podman image inspect --format 'user={{.Config.User}} entrypoint={{.Config.Entrypoint}}' "$tag" >&2
chroot --userspec=65532:65532 "$root" /usr/local/bin/cutover --version
du -sh "$root" >&2
find "$root" -xdev -type f | sed "s|^$root||" | sort >&2
podman umount "$ctr" >/dev/null
say "ok: $tag"
