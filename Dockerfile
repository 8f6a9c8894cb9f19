# syntax=docker/dockerfile:1
#
# The cutover container image: one static-layout binary, the shared libraries it links, CA
# certificates, and nothing else (no shell, no package manager). It runs as uid/gid 65532,
# the user infra/terraform/modules/consumer (and modules/ecs) pin in their security settings.
#
#   podman build -t cutover:dev .          # or: docker build -t cutover:dev .
#   podman run --rm cutover:dev --help
#
# Base images come from a registry. Where none is reachable (this project's build machines),
# infra/image/build-offline.sh bootstraps a stand-in builder from Debian packages and passes
# it as RUST_IMAGE; see infra/README.md, "Container image".

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm

# ------------------------------------------------------------------------------------------------
# Builder: the release binary, with the same system packages scripts/test installs.
# ------------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential pkg-config libssl-dev libsasl2-dev zlib1g-dev cmake curl python3 unzip \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The manifest names benches/decode_map.rs, so cargo wants benches/ even for `--bin`.
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY benches ./benches
COPY src ./src
RUN cargo build --release --locked --bin cutover

# The runtime tree: the binary, exactly the shared objects it links (ldd, so a new dependency
# can't be forgotten), the CA bundle where both OpenSSL (librdkafka) and rustls-native-certs
# (AWS SDK, MySQL) look, and passwd/group entries for uid 65532. The release profile keeps line
# tables for profiling; the image drops them (about 190 MB -> 36 MB) and keeps the symbols, so a
# backtrace still names its functions.
RUN set -eux; \
    root=/runtime; \
    install -D -m 0755 target/release/cutover "$root/usr/local/bin/cutover"; \
    strip --strip-debug "$root/usr/local/bin/cutover"; \
    ldd target/release/cutover | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' \
      | sort -u | while read -r lib; do cp --parents -L "$lib" "$root/"; done; \
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"; \
    mkdir -p "$root/usr/lib/ssl"; \
    ln -s /etc/ssl/certs/ca-certificates.crt "$root/usr/lib/ssl/cert.pem"; \
    ln -s /etc/ssl/certs "$root/usr/lib/ssl/certs"; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"; \
    printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"; \
    printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"; \
    install -d -m 1777 "$root/tmp"; \
    install -d -m 0755 -o 65532 -g 65532 "$root/home/nonroot"; \
    "$root/usr/local/bin/cutover" --version

# ------------------------------------------------------------------------------------------------
# Runtime: nothing but the tree above.
# ------------------------------------------------------------------------------------------------
FROM scratch

COPY --from=builder /runtime/ /

ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    HOME=/home/nonroot
USER 65532:65532
WORKDIR /home/nonroot
# 9464: /metrics, /healthz, /readyz when [telemetry] listen = "0.0.0.0:9464".
EXPOSE 9464
ENTRYPOINT ["cutover"]
CMD ["--help"]
