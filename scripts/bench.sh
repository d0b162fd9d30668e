#!/usr/bin/env bash
# scripts/bench.sh — outrider against its peers, interleaved in ONE run.
#
# Candidates (each with 1 worker / 1 thread), all on loopback (127.0.0.1 only):
#   direct    wrk/h2load straight to the upstream (the ceiling)
#   outrider  target/release/outrider run -c benches/outrider.yaml --workers 1
#   nginx     nginx reverse proxy, 1 worker, upstream keep-alive   (benches/nginx-proxy.conf)
#   haproxy   haproxy, nbthread 1, http-reuse always               (benches/haproxy.cfg)
# Upstream: nginx, 1 worker, `return 200 "ok"` (benches/nginx-upstream.conf), h1 + h2c ports.
#
# Loads (every one bounded in time), run for each candidate in turn (interleaved):
#   h1     wrk -t2 -c64 -d${D}s --latency                 HTTP/1.1 keep-alive, closed loop
#   h2c    h2load -c16 -m10 -D ${D}                        h2c prior knowledge, closed loop
#   fixed  h2load --h1 -c10 -m1 --rps 100 -D ${D}          HTTP/1.1 at a fixed 1,000 req/s
# Per candidate and load: req/s, p50, p99, proxy CPU µs per request (utime+stime of all the
# proxy's processes from /proc/PID/stat, before/after the run, divided by requests completed),
# proxy/upstream core utilisation, errors, and RSS (idle before load, peak during each run).
#
# Usage: scripts/bench.sh [--quick] [--candidates direct,outrider,nginx,haproxy] [--rounds N]
#                         [--no-build] [--keep-tmp] [-h]
# Environment:
#   BENCH_DURATION   seconds per measured run, "10" or "10s" (default 10; --quick: 3; an
#                    explicit BENCH_DURATION wins over --quick)
#   BENCH_OUT        markdown report path (default target/bench/report.md); raw figures go
#                    to the same name with .tsv, proxy logs to <dir>/logs/
#   BENCH_ROUNDS     rounds of all loads x all candidates (default 1); candidate order is
#                    rotated each round, figures are medians over rounds (CPU: total/total)
#   BENCH_CANDIDATES same as --candidates
#   BENCH_WARMUP     seconds of warm-up load per candidate after it starts (default 1; 0 = off)
#   BENCH_RATE       fixed-rate run total req/s (default 1000)
#   BENCH_PORT_BASE  first port of the block used (default 27000: upstream 27080 h1 + 27081 h2c, outrider 27100,
#                    nginx 27200 + 27201, haproxy 27300 + 27301)
#   OUTRIDER_BIN     outrider binary to use (skips `cargo build --release --features jemalloc`)
#   OUTRIDER_ADMIN_PORT / OUTRIDER_METRICS_PORT   (default 15000 / 15090)
#   BENCH_KEEP_TMP=1 keep the temp dir (configs, pid files, raw tool output)
#   OUTRIDER_LOG     passed through to outrider unchanged (its default level is info); its
#                    stderr goes to a file (tail kept in <dir>/logs/outrider.log)
# Output: the markdown report on stdout (and in BENCH_OUT); progress on stderr.
# Every process started here is stopped on exit (also on Ctrl-C / SIGTERM).
# Exit status: 0 = all ran; 1 = setup error (missing tool, busy port, build failure);
#              2 = a candidate failed (bad response, crash, not ready) — the report still shows
#              the others.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCHES="$REPO/benches"

die() { echo "bench.sh: error: $*" >&2; exit 1; }
log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
PORT_HINT="set BENCH_PORT_BASE / OUTRIDER_ADMIN_PORT / OUTRIDER_METRICS_PORT, or stop what holds them"
# shellcheck source=scripts/lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

usage() { sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

# ---------------------------------------------------------------- options
QUICK=0
NO_BUILD=0
KEEP_TMP=${BENCH_KEEP_TMP:-0}
ROUNDS=${BENCH_ROUNDS:-1}
CANDIDATES_ARG=${BENCH_CANDIDATES:-direct,outrider,nginx,haproxy}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-build) NO_BUILD=1 ;;
    --keep-tmp) KEEP_TMP=1 ;;
    --candidates) shift; CANDIDATES_ARG=${1:?--candidates needs a list} ;;
    --candidates=*) CANDIDATES_ARG=${1#*=} ;;
    --rounds) shift; ROUNDS=${1:?--rounds needs a number} ;;
    --rounds=*) ROUNDS=${1#*=} ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

if [[ -n "${BENCH_DURATION:-}" ]]; then
  DUR=${BENCH_DURATION%s}
elif [[ $QUICK == 1 ]]; then
  DUR=3
else
  DUR=10
fi
[[ "$DUR" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DURATION must be whole seconds, e.g. 10 or 10s (got '${BENCH_DURATION:-}')"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "rounds must be a positive integer (got '$ROUNDS')"
WARMUP=${BENCH_WARMUP:-1}
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be whole seconds"
RATE=${BENCH_RATE:-1000}
[[ "$RATE" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RATE must be a positive integer"
RATE_CONNS=10
(( RATE % RATE_CONNS == 0 )) || die "BENCH_RATE must be a multiple of $RATE_CONNS"
RATE_PER_CONN=$(( RATE / RATE_CONNS ))

IFS=', ' read -r -a CANDIDATES <<< "$CANDIDATES_ARG"
for c in "${CANDIDATES[@]}"; do
  case "$c" in direct|outrider|nginx|haproxy) ;; *) die "unknown candidate '$c' (direct, outrider, nginx, haproxy)";; esac
done
[[ ${#CANDIDATES[@]} -gt 0 ]] || die "no candidates"

BENCH_OUT=${BENCH_OUT:-$REPO/target/bench/report.md}
case "$BENCH_OUT" in /*) ;; *) BENCH_OUT="$PWD/$BENCH_OUT" ;; esac
OUT_DIR=$(dirname "$BENCH_OUT")
RAW_OUT="${BENCH_OUT%.md}.tsv"
[[ "$RAW_OUT" == "$BENCH_OUT" ]] && RAW_OUT="$BENCH_OUT.tsv"

PORT_BASE=${BENCH_PORT_BASE:-27000}
UP_H1_PORT=$((PORT_BASE + 80))
UP_H2_PORT=$((PORT_BASE + 81))
OUTRIDER_PORT=$((PORT_BASE + 100))
NGINX_H1_PORT=$((PORT_BASE + 200))
NGINX_H2_PORT=$((PORT_BASE + 201))
HAPROXY_H1_PORT=$((PORT_BASE + 300))
HAPROXY_H2_PORT=$((PORT_BASE + 301))
OUTRIDER_ADMIN_PORT=${OUTRIDER_ADMIN_PORT:-15000}
OUTRIDER_METRICS_PORT=${OUTRIDER_METRICS_PORT:-15090}

CLK_TCK=$(getconf CLK_TCK)
LOADS=(h1 h2c fixed)

# ---------------------------------------------------------------- tools
ensure_tools() {
  local missing=() t pkg
  for t in wrk:wrk h2load:nghttp2-client nginx:nginx haproxy:haproxy curl:curl timeout:coreutils; do
    command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing missing tools: ${missing[*]}"
    local sudo=""
    [[ $EUID -ne 0 ]] && sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 \
      || die "could not install ${missing[*]} (run: apt-get update && apt-get install -y ${missing[*]})"
  fi
  for t in wrk h2load nginx haproxy curl timeout awk; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found"
  done
}

# ---------------------------------------------------------------- processes



# stop_proc NAME — SIGTERM, wait up to 5 s (then SIGKILL); sets STOP_MSG to how it ended.
# (Not in a $(...) subshell: only this shell can `wait` for its children's exit status.)
STOP_MSG=""




fill_template() { # SRC DST
  local user_line=""
  [[ $EUID -eq 0 ]] && user_line="user root;"
  sed -e "s|@TMP@|$TMP|g" \
      -e "s|@NGINX_USER@|$user_line|g" \
      -e "s|@UP_H1_PORT@|$UP_H1_PORT|g" -e "s|@UP_H2_PORT@|$UP_H2_PORT|g" \
      -e "s|@OUTRIDER_PORT@|$OUTRIDER_PORT|g" \
      -e "s|@OUTRIDER_ADMIN_PORT@|$OUTRIDER_ADMIN_PORT|g" \
      -e "s|@OUTRIDER_METRICS_PORT@|$OUTRIDER_METRICS_PORT|g" \
      -e "s|@NGINX_H1_PORT@|$NGINX_H1_PORT|g" -e "s|@NGINX_H2_PORT@|$NGINX_H2_PORT|g" \
      -e "s|@HAPROXY_H1_PORT@|$HAPROXY_H1_PORT|g" -e "s|@HAPROXY_H2_PORT@|$HAPROXY_H2_PORT|g" \
      "$1" > "$2"
  local left
  left=$(grep -v '^[[:space:]]*#' "$2" | grep -o '@[A-Z0-9_]*@' | head -1 || true)
  [[ -z "$left" ]] || die "unfilled placeholder $left in $2 (from $1)"
}

# ---------------------------------------------------------------- /proc accounting
# All pids of a candidate (nginx: master + workers). Empty for direct.
declare -A CAND_PIDS=()
declare -A CAND_FAIL=()
declare -A CAND_IDLE_RSS=()






# ---------------------------------------------------------------- candidates
h1_url() {
  case $1 in
    direct) echo "http://127.0.0.1:$UP_H1_PORT/" ;;
    outrider) echo "http://127.0.0.1:$OUTRIDER_PORT/" ;;
    nginx) echo "http://127.0.0.1:$NGINX_H1_PORT/" ;;
    haproxy) echo "http://127.0.0.1:$HAPROXY_H1_PORT/" ;;
  esac
}
h2_url() {
  case $1 in
    direct) echo "http://127.0.0.1:$UP_H2_PORT/" ;;
    outrider) echo "http://127.0.0.1:$OUTRIDER_PORT/" ;;
    nginx) echo "http://127.0.0.1:$NGINX_H2_PORT/" ;;
    haproxy) echo "http://127.0.0.1:$HAPROXY_H2_PORT/" ;;
  esac
}

# verify NAME — one h1 and one h2c request must answer 200 "ok"
verify() {
  local c=$1 got body
  got=$(curl -s -o "$TMP/verify.body" -w '%{http_code} %{http_version}' --max-time 5 "$(h1_url "$c")" 2>&1) || true
  body=$(cat "$TMP/verify.body" 2>/dev/null || true)
  if [[ "$got" != "200 1.1" || "$body" != "ok" ]]; then
    echo "HTTP/1.1 GET $(h1_url "$c") answered '$got' body '${body:0:200}' (want '200 1.1' body 'ok')"
    return 1
  fi
  rm -f "$TMP/verify.body"
  got=$(curl -s --http2-prior-knowledge -o "$TMP/verify.body" -w '%{http_code} %{http_version}' --max-time 5 "$(h2_url "$c")" 2>&1) || true
  body=$(cat "$TMP/verify.body" 2>/dev/null || true)
  if [[ "$got" != "200 2" || "$body" != "ok" ]]; then
    echo "h2c GET $(h2_url "$c") answered '$got' body '${body:0:200}' (want '200 2' body 'ok')"
    return 1
  fi
  rm -f "$TMP/verify.body"
}

start_upstream() {
  fill_template "$BENCHES/nginx-upstream.conf" "$TMP/nginx-upstream.conf"
  nginx -e stderr -t -q -c "$TMP/nginx-upstream.conf" -p "$TMP" >"$TMP/nginx-upstream.t" 2>&1 \
    || { cat "$TMP/nginx-upstream.t" >&2; die "upstream nginx config test failed"; }
  start_proc upstream nginx -e stderr -c "$TMP/nginx-upstream.conf" -p "$TMP"
  local msg
  msg=$(wait_http upstream "$(pid_of upstream)" "http://127.0.0.1:$UP_H1_PORT/") || die "upstream: $msg"
  msg=$(wait_http upstream "$(pid_of upstream)" "http://127.0.0.1:$UP_H2_PORT/" h2) || die "upstream h2c: $msg"
  sleep 0.2
  read -r -a UPSTREAM_PIDS <<< "$(proc_tree "$(pid_of upstream)" | tr '\n' ' ')"
  [[ ${#UPSTREAM_PIDS[@]} -ge 2 ]] || die "upstream nginx: no worker process found"
  msg=$(verify direct) || die "upstream does not answer as expected: $msg"
}

# start_candidate NAME — start it, wait until ready, verify; sets CAND_PIDS / CAND_FAIL
start_candidate() {
  local c=$1 msg="" pid
  case $c in
    direct)
      CAND_PIDS[$c]=""
      return 0 ;;
    outrider)
      fill_template "$BENCHES/outrider.yaml" "$TMP/outrider.yaml"
      if ! msg=$("$OUTRIDER" check -c "$TMP/outrider.yaml" 2>&1); then
        CAND_FAIL[$c]="\`outrider check\` rejected the bench config: $msg"
        return 1
      fi
      start_proc outrider "$OUTRIDER" run -c "$TMP/outrider.yaml" --workers 1
      pid=$(pid_of outrider)
      msg=$(wait_http outrider "$pid" "http://127.0.0.1:$OUTRIDER_ADMIN_PORT/ready") || { CAND_FAIL[$c]="not ready: $msg"; return 1; }
      ;;
    nginx)
      fill_template "$BENCHES/nginx-proxy.conf" "$TMP/nginx-proxy.conf"
      nginx -e stderr -t -q -c "$TMP/nginx-proxy.conf" -p "$TMP" >"$TMP/nginx-proxy.t" 2>&1 \
        || { cat "$TMP/nginx-proxy.t" >&2; die "nginx proxy config test failed"; }
      start_proc nginx nginx -e stderr -c "$TMP/nginx-proxy.conf" -p "$TMP"
      pid=$(pid_of nginx)
      msg=$(wait_http nginx "$pid" "$(h1_url nginx)") || { CAND_FAIL[$c]="not ready: $msg"; return 1; }
      sleep 0.2
      ;;
    haproxy)
      fill_template "$BENCHES/haproxy.cfg" "$TMP/haproxy.cfg"
      haproxy -c -q -f "$TMP/haproxy.cfg" >"$TMP/haproxy.t" 2>&1 \
        || { cat "$TMP/haproxy.t" >&2; die "haproxy config check failed"; }
      # -db: foreground, single process (no master-worker), so the pid is the one doing the work
      start_proc haproxy haproxy -db -f "$TMP/haproxy.cfg"
      pid=$(pid_of haproxy)
      msg=$(wait_http haproxy "$pid" "$(h1_url haproxy)") || { CAND_FAIL[$c]="not ready: $msg"; return 1; }
      ;;
  esac
  CAND_PIDS[$c]=$(proc_tree "$pid" | tr '\n' ' ')
  if ! msg=$(verify "$c"); then
    CAND_FAIL[$c]="wrong response: $msg"
    return 1
  fi
  # shellcheck disable=SC2086
  CAND_IDLE_RSS[$c]=$(status_kb VmRSS ${CAND_PIDS[$c]})
  return 0
}

# ---------------------------------------------------------------- loads



# run_tool LIMIT_S OUTFILE CMD... — a load tool, bounded by `timeout`; run in the background
# and waited for so that a signal to this script is handled at once (cleanup stops it).
LOAD_PID=""
run_tool() {
  local limit=$1 out=$2 rc=0; shift 2
  timeout -k 5 "$limit" "$@" >"$out" 2>&1 &
  LOAD_PID=$!
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=""
  return "$rc"
}

# run_load ROUND LOAD CANDIDATE [warmup] — appends one line to $TMP/results.tsv
run_load() {
  local round=$1 load=$2 c=$3 warm=${4:-}
  local d=$DUR
  [[ -n "$warm" ]] && d=$WARMUP
  local out="$TMP/run.$load.$c.$round${warm:+.warm}.out" lat="$TMP/lat.log"
  local -a pids=()
  # shellcheck disable=SC2206
  pids=(${CAND_PIDS[$c]:-})
  local limit=$((d + 30))
  local cmd=()
  case $load in
    h1) cmd=(wrk -t2 -c64 "-d${d}s" --latency "$(h1_url "$c")") ;;
    h2c) cmd=(h2load -c16 -m10 -D "$d" --log-file "$lat" "$(h2_url "$c")") ;;
    fixed) cmd=(h2load --h1 -c"$RATE_CONNS" -m1 --rps "$RATE_PER_CONN" -D "$d" --log-file "$lat" "$(h1_url "$c")") ;;
  esac
  [[ -n "$warm" ]] && { run_tool "$limit" "$out" "${cmd[@]}" || true; return 0; }

  rm -f "$lat"
  local cpu0 up0 t0 t1 cpu1 up1 rc=0
  [[ ${#pids[@]} -gt 0 ]] && reset_hwm "${pids[@]}"
  cpu0=$( [[ ${#pids[@]} -gt 0 ]] && cpu_ticks "${pids[@]}" || echo 0 )
  up0=$(cpu_ticks "${UPSTREAM_PIDS[@]}")
  t0=$(now_s)
  run_tool "$limit" "$out" "${cmd[@]}" || rc=$?
  t1=$(now_s)
  cpu1=$( [[ ${#pids[@]} -gt 0 ]] && cpu_ticks "${pids[@]}" || echo 0 )
  up1=$(cpu_ticks "${UPSTREAM_PIDS[@]}")
  local peak=NA status=ok
  if [[ ${#pids[@]} -gt 0 ]]; then
    peak=$(status_kb VmHWM "${pids[@]}")
    if ! alive_all "${pids[@]}"; then
      status=crashed
      CAND_FAIL[$c]="process exited during the $load run (round $round)"
    fi
  fi
  if [[ $rc -ne 0 ]]; then
    if [[ $status == ok ]]; then status="tool-exit-$rc"; else status="$status,tool-exit-$rc"; fi
  fi

  local reqs=0 rps=0 p50=NA p99=NA errors=0
  case $load in
    h1)
      reqs=$(awk '/ requests in /{print $1; exit}' "$out"); reqs=${reqs:-0}
      rps=$(awk '/^Requests\/sec:/{print $2; exit}' "$out"); rps=${rps:-0}
      p50=$(to_us "$(awk '$1 == "50%" {print $2; exit}' "$out")")
      p99=$(to_us "$(awk '$1 == "99%" {print $2; exit}' "$out")")
      errors=$(awk '/Socket errors:/ { gsub(/,/, ""); s += $4 + $6 + $8 + $10 }
                    /Non-2xx or 3xx responses:/ { s += $5 } END { print s + 0 }' "$out")
      ;;
    h2c|fixed)
      rps=$(awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($i == "req/s,") print $(i - 1); exit }' "$out"); rps=${rps:-0}
      reqs=$(awk '/^requests:/ { for (i = 1; i <= NF; i++) if ($i ~ /^succeeded/) print $(i - 1); exit }' "$out"); reqs=${reqs:-0}
      errors=$(awk '/^requests:/ { for (i = 1; i <= NF; i++) if ($i ~ /^(failed|errored|timeout)/) s += $(i - 1) }
                    /^status codes:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[345]xx/) s += $(i - 1) }
                    END { print s + 0 }' "$out")
      if [[ -s "$lat" ]]; then read -r p50 p99 < <(log_percentiles "$lat"); fi
      rm -f "$lat"
      ;;
  esac
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  # round load cand rps reqs p50_us p99_us proxy_ticks upstream_ticks wall_s errors peak_kb status
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$round" "$load" "$c" "$rps" "$reqs" "$p50" "$p99" "$((cpu1 - cpu0))" "$((up1 - up0))" \
    "$secs" "$errors" "$peak" "$status" >> "$TMP/results.tsv"
  local cpu_us="—"
  [[ ${#pids[@]} -gt 0 && $reqs -gt 0 ]] && cpu_us=$(awk -v t=$((cpu1 - cpu0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  log "  $load $c: $rps req/s, p50 ${p50}us, p99 ${p99}us, cpu ${cpu_us}us/req, errors $errors, $status"
  if [[ $status != ok ]]; then
    log "  $c $load: $status; tool output:"; sed 's/^/      /' "$out" >&2
    [[ -f "$TMP/$c.log" ]] && { log "  last lines of $c log:"; tail -n 30 "$TMP/$c.log" | sed 's/^/      /' >&2; }
  fi
}

# ---------------------------------------------------------------- report
write_report() {
  local report=$1 raw=$2
  {
    echo "# outrider benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); host: $(nproc) cores, $(uname -sr); load avg before: $LOADAVG_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- outrider: ${OUTRIDER_DESC:-not run}; commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)$( [[ -n "$(git -C "$REPO" status --porcelain 2>/dev/null | head -1)" ]] && echo ' (dirty tree)')"
    echo "- peers: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v 2>&1 | head -1 | awk '{print $1, $2, $3}'); load: $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $(h2load --version 2>&1 | head -1)"
    echo "- every proxy and the upstream run 1 worker/thread; loopback only; ${DUR}s per measured run, ${WARMUP}s warm-up per candidate per load kind, ${ROUNDS} round(s), candidates interleaved within each load (order rotated per round)"
    echo "- proxy CPU µs/req = (utime+stime of all the proxy's processes after − before the run) / requests completed; \"core %\" = CPU time / wall time (100% = one core saturated)"
    [[ $HWM_RESET_OK == 0 ]] && echo "- note: /proc/PID/clear_refs could not be written, so \"peak RSS\" is the peak since the proxy started"
    echo
    awk -F'\t' -v hz="$CLK_TCK" -v order="${CANDIDATES[*]}" -v dur="$DUR" -v rate="$RATE" \
        -v rconns="$RATE_CONNS" -v rper="$RATE_PER_CONN" -v idle="$IDLE_LIST" -v fails="$FAIL_LIST" '
      function med(key,    n, i, j, t, a) {
        n = cnt[key]; if (n == 0) return "NA"
        for (i = 1; i <= n; i++) a[i] = vals[key, i]
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
      function add(key, v) { if (v == "NA" || v == "") return; cnt[key]++; vals[key, cnt[key]] = v + 0 }
      function lat(us) { if (us == "NA" || us == "") return "—"; if (us < 1000) return sprintf("%d µs", us); return sprintf("%.2f ms", us / 1000) }
      function num(x) { return (x == "NA" || x == "") ? "—" : sprintf("%.0f", x) }
      function ratio(a, b) { return (a == "NA" || b == "NA" || a == "" || b == "" || b == 0) ? "—" : sprintf("%.2f×", a / b) }
      function mib(kb) { return (kb == "NA" || kb == "") ? "—" : sprintf("%.1f MiB", kb / 1024) }
      function cpuus(c, l) { return (ptk[c, l] == "" || reqs[c, l] == 0 || c == "direct") ? "NA" : ptk[c, l] / hz * 1e6 / reqs[c, l] }
      function warn(c, l) { return (bad[c, l] != "" || errs[c, l] > 0) ? " ⚠" : "" }
      function fmt1(x) { return (x == "NA" || x == "") ? "—" : sprintf("%.1f", x) }
      {
        r = $1; l = $2; c = $3
        add(c SUBSEP l SUBSEP "rps", $4); add(c SUBSEP l SUBSEP "p50", $6); add(c SUBSEP l SUBSEP "p99", $7)
        reqs[c, l] += $5; ptk[c, l] += $8; utk[c, l] += $9; wall[c, l] += $10; errs[c, l] += $11
        if ($12 != "NA" && $12 + 0 > peak[c, l]) peak[c, l] = $12 + 0
        if ($13 != "ok") bad[c, l] = bad[c, l] (bad[c, l] == "" ? "" : ",") $13
        seen[c, l] = 1
      }
      END {
        nc = split(order, cands, " ")
        ni = split(idle, il, " "); for (i = 1; i <= ni; i++) { split(il[i], kv, "="); idlekb[kv[1]] = kv[2] }
        nf = split(fails, fl, " "); for (i = 1; i <= nf; i++) failed[fl[i]] = 1
        title["h1"] = sprintf("HTTP/1.1 keep-alive, closed loop — `wrk -t2 -c64 -d%ss --latency`", dur)
        title["h2c"] = sprintf("h2c (prior knowledge), closed loop — `h2load -c16 -m10 -D %s`", dur)
        title["fixed"] = sprintf("HTTP/1.1 at a fixed %d req/s — `h2load --h1 -c%d -m1 --rps %d -D %s` (latency per request from `--log-file`)", rate, rconns, rper, dur)
        nl = split("h1 h2c fixed", loads, " ")
        for (li = 1; li <= nl; li++) {
          l = loads[li]
          print "## " title[l]; print ""
          print "| candidate | req/s | p50 | p99 | proxy CPU µs/req | proxy core % | upstream core % | errors | peak RSS | status |"
          print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
          for (ci = 1; ci <= nc; ci++) {
            c = cands[ci]
            if (!seen[c, l]) { printf "| %s | — | — | — | — | — | — | — | — | %s |\n", c, (failed[c] ? "FAILED (see below)" : "not run"); continue }
            rps = med(c SUBSEP l SUBSEP "rps"); p50 = med(c SUBSEP l SUBSEP "p50"); p99 = med(c SUBSEP l SUBSEP "p99")
            cu = cpuus(c, l)
            pc = (c == "direct" || wall[c, l] == 0) ? "—" : sprintf("%.0f%%", ptk[c, l] / hz / wall[c, l] * 100)
            uc = (wall[c, l] == 0) ? "—" : sprintf("%.0f%%", utk[c, l] / hz / wall[c, l] * 100)
            printf "| %s | %s | %s | %s | %s | %s | %s | %d | %s | %s |\n", c, num(rps), lat(p50), lat(p99), fmt1(cu), pc, uc, errs[c, l], \
              (c == "direct" ? "—" : mib(peak[c, l])), (bad[c, l] == "" ? "ok" : bad[c, l])
            R[c, l] = rps; P99[c, l] = p99; CU[c, l] = cu
          }
          print ""
        }
        print "## Summary (ratios within this run)"; print ""
        print "| candidate | h1 req/s | ×direct | ×nginx | h2c req/s | ×direct | ×nginx | CPU µs/req h1 / h2c / fixed | CPU ×nginx h1 / h2c | p99 @" rate "/s | ×nginx | RSS idle / peak |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (ci = 1; ci <= nc; ci++) {
          c = cands[ci]
          pk = 0; for (li = 1; li <= nl; li++) if (peak[c, loads[li]] > pk) pk = peak[c, loads[li]]
          h1 = R[c, "h1"]; h2 = R[c, "h2c"]
          printf "| %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %s / %s | %s | %s | %s |\n", c,
            num(h1) warn(c, "h1"), ratio(h1, R["direct", "h1"]), ratio(h1, R["nginx", "h1"]),
            num(h2) warn(c, "h2c"), ratio(h2, R["direct", "h2c"]), ratio(h2, R["nginx", "h2c"]),
            fmt1(CU[c, "h1"]), fmt1(CU[c, "h2c"]), fmt1(CU[c, "fixed"]),
            ratio(CU[c, "h1"], CU["nginx", "h1"]), ratio(CU[c, "h2c"], CU["nginx", "h2c"]),
            lat(P99[c, "fixed"]), ratio(P99[c, "fixed"], P99["nginx", "fixed"]),
            (c == "direct") ? "—" : mib(idlekb[c] == "" ? "NA" : idlekb[c]) " / " (pk ? mib(pk) : "—")
        }
        print ""
        print "⚠ = that run had errors or a bad status (see its table). Ratios: req/s ×direct/×nginx > 1 is faster; CPU ×nginx and p99 ×nginx < 1 is better. Latency in the closed-loop runs is at saturation; the fixed-rate run is the latency figure (h2load paces each connection with a timer; a request delayed behind a slow one is timed from when it was sent)."
      }' "$raw"
    echo
    echo "## Notes"
    echo
    echo "- RSS is the sum of VmRSS over the candidate's processes (nginx: master + worker, so shared pages count twice); \"peak\" is VmHWM after resetting it (\`/proc/PID/clear_refs\`) before each run."
    echo "- CPU is read in clock ticks of $((1000 / CLK_TCK)) ms: in the ${DUR}s fixed-rate run that is ±$(awk -v hz="$CLK_TCK" -v n=$((RATE * DUR)) 'BEGIN { printf "%.1f", 1e6 / hz / n }') µs/req; the closed-loop figures are far more precise."
    local c
    for c in "${RUN_CANDS[@]}"; do
      [[ $c == direct ]] && continue
      echo "- $c: ${SHUTDOWN[$c]:-?}; its stdout/stderr log: ${LOG_BYTES[$c]:-0} bytes"
    done
    awk -F'\t' -v hz="$CLK_TCK" '$3 != "direct" && $10 > 0 && $9 / hz / $10 > 0.9 {
        printf "- WARNING: the upstream used %.0f%% of a core during the %s run through %s (round %s): it may have been the bottleneck\n", $9 / hz / $10 * 100, $2, $3, $1 }' "$raw"
    if [[ -n "$FAIL_LIST" ]]; then
      echo
      echo "## Failures"
      echo
      for c in $FAIL_LIST; do echo "- **$c**: ${CAND_FAIL[$c]}"; done
    fi
  } > "$report"
}

# ---------------------------------------------------------------- main
ensure_tools
LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

OUTRIDER=""
OUTRIDER_DESC=""
if has_candidate outrider; then
  if [[ -n "${OUTRIDER_BIN:-}" ]]; then
    OUTRIDER=$OUTRIDER_BIN
    OUTRIDER_DESC="$OUTRIDER_BIN (OUTRIDER_BIN)"
  else
    OUTRIDER="${CARGO_TARGET_DIR:-$REPO/target}/release/outrider"
    OUTRIDER_DESC="cargo build --release --features jemalloc"
    if [[ $NO_BUILD == 0 ]]; then
      log "building outrider: cargo build --release --features jemalloc"
      (cd "$REPO" && cargo build --release --features jemalloc) >&2 || die "cargo build --release --features jemalloc failed"
    else
      OUTRIDER_DESC="$OUTRIDER (--no-build)"
    fi
  fi
  [[ -x "$OUTRIDER" ]] || die "outrider binary not found or not executable: $OUTRIDER"
fi

ports=("$UP_H1_PORT" "$UP_H2_PORT")
has_candidate outrider && ports+=("$OUTRIDER_PORT" "$OUTRIDER_ADMIN_PORT" "$OUTRIDER_METRICS_PORT")
has_candidate nginx && ports+=("$NGINX_H1_PORT" "$NGINX_H2_PORT")
has_candidate haproxy && ports+=("$HAPROXY_H1_PORT" "$HAPROXY_H2_PORT")
check_ports "${ports[@]}"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TMP=$(mktemp -d "${TMPDIR:-/tmp}/outrider-bench.XXXXXX")
: > "$TMP/results.tsv"
log "temp dir: $TMP; ${DUR}s per run; candidates: ${CANDIDATES[*]}; rounds: $ROUNDS"
if [[ -n "$OUTRIDER" ]]; then
  # Run a private copy, so a rebuild during the run (cargo in another shell) cannot swap it.
  cp "$OUTRIDER" "$TMP/outrider-bin" || die "cannot copy $OUTRIDER"
  OUTRIDER_DESC="$OUTRIDER_DESC; binary built $(date -u -r "$OUTRIDER" '+%Y-%m-%d %H:%M:%S UTC'), $(( $(stat -c %s "$OUTRIDER") / 1024 )) KiB"
  OUTRIDER="$TMP/outrider-bin"
fi

start_upstream
log "upstream nginx up (pids ${UPSTREAM_PIDS[*]})"

RUN_CANDS=()
for c in "${CANDIDATES[@]}"; do
  if start_candidate "$c"; then
    RUN_CANDS+=("$c")
    log "$c ready (pids: ${CAND_PIDS[$c]:-none}; idle RSS ${CAND_IDLE_RSS[$c]:-—} kB)"
  else
    log "$c FAILED: ${CAND_FAIL[$c]}"
  fi
done
[[ ${#RUN_CANDS[@]} -gt 0 ]] || die "no candidate could be started"

if [[ $WARMUP -gt 0 ]]; then
  log "warm-up (${WARMUP}s per candidate and load kind)"
  for load in h1 h2c; do
    for c in "${RUN_CANDS[@]}"; do run_load 0 "$load" "$c" warm; done
  done
fi

n=${#RUN_CANDS[@]}
for ((round = 1; round <= ROUNDS; round++)); do
  for load in "${LOADS[@]}"; do
    log "round $round/$ROUNDS, load $load"
    for ((i = 0; i < n; i++)); do
      c=${RUN_CANDS[$(((i + round - 1) % n))]}
      [[ -n "${CAND_FAIL[$c]:-}" ]] && { log "  $load $c: skipped (${CAND_FAIL[$c]})"; continue; }
      run_load "$round" "$load" "$c"
      sleep 1
    done
  done
done

declare -A SHUTDOWN=()
declare -A LOG_BYTES=()
for c in "${RUN_CANDS[@]}"; do
  [[ $c == direct ]] && continue
  LOG_BYTES[$c]=$(stat -c %s "$TMP/$c.log" 2>/dev/null || echo 0)
  stop_proc "$c"
  SHUTDOWN[$c]=$STOP_MSG
  log "$c ${SHUTDOWN[$c]}"
done

FAIL_LIST=""
for c in "${CANDIDATES[@]}"; do [[ -n "${CAND_FAIL[$c]:-}" ]] && FAIL_LIST+="$c "; done
FAIL_LIST=${FAIL_LIST% }
IDLE_LIST=""
for c in "${!CAND_IDLE_RSS[@]}"; do IDLE_LIST+="$c=${CAND_IDLE_RSS[$c]} "; done

mkdir -p "$OUT_DIR"
cp "$TMP/results.tsv" "$RAW_OUT"
write_report "$BENCH_OUT" "$TMP/results.tsv"
mkdir -p "$OUT_DIR/logs"
for f in "$TMP"/*.log "$TMP"/*.yaml "$TMP"/*.conf "$TMP"/*.cfg; do
  [[ -f "$f" ]] || continue
  tail -n 2000 "$f" > "$OUT_DIR/logs/$(basename "$f")"
done
echo
cat "$BENCH_OUT"
log "report: $BENCH_OUT (raw: $RAW_OUT, logs and configs: $OUT_DIR/logs/)"
[[ -z "$FAIL_LIST" ]] || exit 2
