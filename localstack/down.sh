#!/usr/bin/env bash
# localstack/down.sh [--clean] — stop the services started by localstack/up.sh of
# this checkout (SIGTERM, wait, then SIGKILL). Idempotent.
#   --clean   also delete the state directory (.localstack/: data, logs, pid files);
#             the download cache (~/.cache/cutover-localstack) is kept.
set -euo pipefail

LS_NO_EXPORT=1
# shellcheck source=localstack/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

clean=
for a in "$@"; do
  case $a in
    --clean) clean=1 ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) ls_die "unknown argument: $a (usage: localstack/down.sh [--clean])" ;;
  esac
done

# name -> pid, from the pid files, keeping only processes this checkout started.
declare -A pids=()
for name in kafka dynamodb mariadb; do
  pid=$(ls_read_pid "$name")
  if [[ -n $pid ]] && ls_owned "$pid"; then pids[$pid]=$name; fi
done
# Strays whose pid file is gone (e.g. .localstack/ deleted by hand): found by the
# marker variable that up.sh puts in each daemon's environment.
for pid in $(ls_owned_pids); do
  [[ -n ${pids[$pid]:-} ]] || pids[$pid]="process $(ls_cmdline "$pid" | cut -c1-60)"
done

if (( ${#pids[@]} == 0 )); then
  ls_log "nothing running"
else
  for pid in "${!pids[@]}"; do
    ls_log "stopping ${pids[$pid]} (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
  done
  # MariaDB may take a while to shut InnoDB down cleanly; the others stop in ~2 s.
  deadline=$((SECONDS + 60))
  while :; do
    left=()
    for pid in "${!pids[@]}"; do ls_alive "$pid" && left+=("$pid"); done
    (( ${#left[@]} == 0 )) && break
    if (( SECONDS >= deadline )); then
      for pid in "${left[@]}"; do
        ls_log "${pids[$pid]} (pid $pid) ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      done
      sleep 0.5
      break
    fi
    sleep 0.1
  done
  ls_log "stopped"
fi
rm -f "$LS_STATE"/{kafka,dynamodb,mariadb}.pid

if [[ -n $clean ]]; then
  case $LS_STATE in
    / | "$LS_REPO" | "${HOME:-/root}") ls_die "refusing to delete $LS_STATE" ;;
  esac
  if [[ -d $LS_STATE ]]; then
    ls_log "removing $LS_STATE"
    rm -rf "$LS_STATE"
  fi
  rm -f /tmp/cutover-mariadb-"$(printf '%s' "$LS_STATE" | sha1sum | cut -c1-12)".sock
fi
exit 0
