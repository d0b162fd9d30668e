# Shared helpers of scripts/bench*.sh: process lifecycle (every started process is stopped on
# exit), ports, readiness, /proc CPU and memory figures, latency percentiles.
# Sourced, not run. The caller defines `die`, `log`, and may set KEEP_TMP, LOAD_PID, TMP,
# CANDIDATES and PORT_HINT (what to change when a port is busy).
# shellcheck shell=bash

TMP="${TMP:-}"
declare -a STARTED_PIDS=()
declare -a STARTED_NAMES=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local i pid
  [[ -n "${LOAD_PID:-}" ]] && kill -TERM "$LOAD_PID" 2>/dev/null || true
  for i in "${!STARTED_PIDS[@]}"; do
    pid=${STARTED_PIDS[$i]}
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
  done
  for i in "${!STARTED_PIDS[@]}"; do
    pid=${STARTED_PIDS[$i]}
    local n=0
    while kill -0 "$pid" 2>/dev/null && (( n < 50 )); do sleep 0.1; n=$((n + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
      log "${STARTED_NAMES[$i]} (pid $pid) ignored SIGTERM for 5s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$TMP" && -d "$TMP" ]]; then
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
      log "temp dir kept: $TMP"
    else
      rm -rf "$TMP"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD... — run in the background, output to $TMP/NAME.log
start_proc() {
  local name=$1; shift
  "$@" >"$TMP/$name.log" 2>&1 &
  local pid=$!
  STARTED_PIDS+=("$pid")
  STARTED_NAMES+=("$name")
  echo "$pid" > "$TMP/$name.pid"
}

pid_of() { cat "$TMP/$1.pid"; }

now_s() { date +%s.%N; }

stop_proc() {
  local name=$1 pid rc=0 n=0 t0 t1
  pid=$(pid_of "$name")
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || rc=$?
    STOP_MSG="had already exited (status $rc)"
    return 0
  fi
  t0=$(now_s)
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && (( n < 100 )); do sleep 0.05; n=$((n + 1)); done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    STOP_MSG="did NOT exit within 5 s of SIGTERM (killed)"
    return 0
  fi
  wait "$pid" 2>/dev/null || rc=$?
  t1=$(now_s)
  STOP_MSG="exited on SIGTERM with status $rc after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
}

port_busy() {
  local p=$1
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
  fi
}

check_ports() {
  local busy=() p
  for p in "$@"; do port_busy "$p" && busy+=("$p"); done
  if [[ ${#busy[@]} -gt 0 ]]; then
    command -v ss >/dev/null 2>&1 && ss -ltnp 2>/dev/null | grep -E ":($(IFS='|'; echo "${busy[*]}"))\b" >&2 || true
    die "port(s) already in use on this machine: ${busy[*]} (${PORT_HINT:-stop what holds them})"
  fi
}

# wait_http NAME PID URL [h2] — until URL answers 2xx, or the process dies, or 15 s pass
wait_http() {
  local name=$1 pid=$2 url=$3 h2=${4:-} i
  local opts=(-sf -o /dev/null --max-time 1)
  [[ -n "$h2" ]] && opts+=(--http2-prior-knowledge)
  for ((i = 0; i < 150; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited during start-up"; tail -n 30 "$TMP/$name.log" | sed 's/^/    /'
      return 1
    fi
    curl "${opts[@]}" "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$name not ready after 15s ($url)"; tail -n 30 "$TMP/$name.log" | sed 's/^/    /'
  return 1
}

proc_tree() { # PID -> PID and its children
  local pid=$1
  echo "$pid"
  if command -v pgrep >/dev/null 2>&1; then
    pgrep -P "$pid" || true
  else
    local f ppid
    for f in /proc/[0-9]*/stat; do
      ppid=$(awk '{sub(/.*\) /, ""); print $2}' "$f" 2>/dev/null) || continue
      [[ "$ppid" == "$pid" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
    done
  fi
}

machine_ticks() { # -> "TOTAL IDLE" clock ticks of all CPUs since boot (idle includes iowait)
  awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $5 + $6; exit }' /proc/stat
}

cpu_ticks() { # PIDS... -> sum of utime+stime in clock ticks
  local pid s total=0
  for pid in "$@"; do
    s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    total=$(( total + ${12} + ${13} ))
  done
  echo "$total"
}

status_kb() { # FIELD PIDS... -> sum of FIELD (VmRSS / VmHWM) in kB
  local field=$1; shift
  local pid total=0 v
  for pid in "$@"; do
    v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null) || v=0
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}

HWM_RESET_OK=1
reset_hwm() { # PIDS... — reset VmHWM to the current RSS (Linux >= 4.0)
  local pid
  for pid in "$@"; do
    echo 5 2>/dev/null > "/proc/$pid/clear_refs" || HWM_RESET_OK=0
  done
}

alive_all() { local pid; for pid in "$@"; do kill -0 "$pid" 2>/dev/null || return 1; done; }

# to_us VALUE_WITH_UNIT (wrk style: 475.00us 1.23ms 2.00s 1.00m)
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1000000;
    else if (u == "m") f = 60000000; else if (u == "h") f = 3600000000; else f = -1
    if (f < 0) print "NA"; else printf "%.0f\n", n * f }'
}

# percentiles of an h2load --log-file (start_us \t status \t duration_us) -> "p50 p99"
log_percentiles() {
  awk -F'\t' 'NF >= 3 { d = int($3); h[d]++; n++; if (d > max) max = d }
    END {
      if (n == 0) { print "NA NA"; exit }
      r50 = int(n * 0.50 + 0.999999); r99 = int(n * 0.99 + 0.999999); c = 0; p50 = "NA"; p99 = "NA"
      for (d = 0; d <= max; d++) if (d in h) {
        c += h[d]
        if (p50 == "NA" && c >= r50) p50 = d
        if (c >= r99) { p99 = d; break }
      }
      print p50, p99 }' "$1"
}

has_candidate() { local c; for c in "${CANDIDATES[@]}"; do [[ $c == "$1" ]] && return 0; done; return 1; }
