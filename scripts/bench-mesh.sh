#!/usr/bin/env bash
# scripts/bench-mesh.sh — the two-hop mTLS mesh path, outrider against its peers, in ONE run.
#
#   load tool --plain HTTP/1.1--> outbound proxy --mTLS (h2 where possible)--> inbound proxy
#             --HTTP/1.1 keep-alive--> upstream nginx (1 worker, `return 200 "ok"`)
#
# Candidates (every proxy with 1 worker / 1 thread), all on loopback (127.0.0.1 only):
#   direct    the load tool straight to the upstream (the ceiling; no proxies, no TLS)
#   outrider  two `outrider run --workers 1`: outbound sidecar (benches/mesh/outrider-outbound.yaml)
#             -> HTTP/2 over mTLS (protocol: auto, ALPN h2), server SPIFFE ID checked ->
#             inbound sidecar (benches/mesh/outrider-inbound.yaml, mode: strict)
#   haproxy   two haproxy (nbthread 1): A (benches/mesh/haproxy-outbound.cfg) -> HTTP/2 over mTLS
#             (`ssl crt ... verify required alpn h2 proto h2`, http-reuse always) -> B
#             (benches/mesh/haproxy-inbound.cfg, `verify required`). Verifies by CA only: no
#             SPIFFE URI SAN check (not native in haproxy).
#   haproxy-hdr  the haproxy pair plus the per-request header work outrider does by contract
#             (SPEC §6; benches/mesh/haproxy-hdr-*.cfg): x-request-id kept or generated and
#             echoed, traceparent continued or started with a new span id per hop,
#             x-forwarded-for appended and the caller's identity set on the inbound. The same
#             job as outrider's pair, as far as haproxy's configuration can express it.
#   nginx     two nginx (1 worker): A -> HTTP/1.1 over mTLS, upstream keep-alive -> B
#             (nginx cannot proxy to an h2 upstream; A cannot verify B: see the config comments)
#   floor     two `mesh_floor` (examples/mesh_floor.rs): outrider's transport with nothing on it
#             (same rustls configs and SPIFFE checks, h2 client settings, hyper servers, early
#             polls; no routing, policies, telemetry, request ids). Not a product: the floor
#             under any sidecar built on tokio + hyper + h2 + rustls, to tell the stack's cost
#             from outrider's own. Not in the default candidate list.
# Certificates: `outrider certs --out DIR --trust-domain bench.local client server`
# (ECDSA P-256; URI SANs spiffe://bench.local/sa/client|server), used by every pair.
#
# Loads (every one bounded in time), each run for every candidate in turn (interleaved):
#   h1         wrk -t2 -c64 -d${D}s --latency                 HTTP/1.1 keep-alive, closed loop
#   fixed      h2load --h1 -c10 -m1 --rps 100 -D ${D}          HTTP/1.1 at a fixed 1,000 req/s
#   newconn    openssl s_time -new -time ${D} -www ...          against the INBOUND listener
#              directly, with the client certificate: one full mTLS handshake (TLS 1.3, no
#              resumption) + one HTTP/1.0 request per connection, sequential (1 connection at a
#              time); the client waits for the answer, so the server has finished its side
#   handshake  openssl s_time -new -time ${D}                   the same without a request: the
#              client closes right after its own handshake finished (it does not wait for the
#              server), so this overstates what the server completes; shown for reference
# Per candidate and load: req/s (conn/s), p50, p99, CPU µs per request summed over BOTH proxies
# of the pair (utime+stime of all their processes from /proc/PID/stat, before/after the run,
# divided by requests completed; for newconn/handshake the inbound proxy only, per connection),
# errors, the machine's idle CPU during the run (/proc/stat: a pipeline whose stages wait on
# each other leaves cores idle), mTLS connections open between the pair after each h1 run
# (`ss`), RSS of each proxy
# (idle before load, peak during each run).
#
# Usage: scripts/bench-mesh.sh [--quick]
#                              [--candidates direct,outrider,haproxy,haproxy-hdr,nginx,floor]
#                              [--rounds N] [--no-build] [--pgo] [--keep-tmp] [-h]
#   --pgo            measure a profile-guided build of outrider (scripts/build-pgo.sh: an
#                    instrumented build trained on this benchmark's outrider pair, then the
#                    optimized build; about 5 minutes more). Without it, the plain release build.
# Environment:
#   BENCH_DURATION   seconds per measured run, "10" or "10s" (default 10; --quick: 3; an
#                    explicit BENCH_DURATION wins over --quick)
#   BENCH_OUT        markdown report path (default target/bench/mesh-report.md); raw figures go
#                    to the same name with .tsv, proxy logs and configs to <dir>/mesh-logs/
#   BENCH_ROUNDS     rounds of all loads x all candidates (default 1); the order of the pairs is
#                    rotated each round (direct always runs last: a run right after it is
#                    slower), figures are medians over rounds (CPU: total/total)
#   BENCH_CANDIDATES same as --candidates
#   BENCH_WARMUP     seconds of h1 warm-up load per candidate after it starts (default 1, min 1)
#   BENCH_RATE       fixed-rate run total req/s (default 1000, a multiple of 10)
#   BENCH_PORT_BASE  first port of the block used (default 28000: upstream +80/+81,
#                    outrider +100 out / +101 in / +110..113 admin+metrics, nginx +200 / +201,
#                    haproxy +300 / +301, floor +400 / +401, haproxy-hdr +500 / +501)
#   OUTRIDER_BIN     outrider binary to use (skips `cargo build --release --features jemalloc`)
#   FLOOR_BIN        mesh_floor binary to use (default: built with outrider, from
#                    `cargo build --release --features jemalloc --example mesh_floor`)
#   BENCH_KEEP_TMP=1 keep the temp dir (configs, certificates, pid files, raw tool output)
#   OUTRIDER_LOG     passed through to outrider unchanged (its default level is info)
# Output: the markdown report on stdout (and in BENCH_OUT); progress on stderr.
# Every process started here is stopped on exit (also on Ctrl-C / SIGTERM).
# Exit status: 0 = all ran; 1 = setup error (missing tool, busy port, build failure);
#              2 = a candidate failed (bad response, crash, not ready) — the report still shows
#              the others.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCHES="$REPO/benches"
MESH="$BENCHES/mesh"

die() { echo "bench-mesh.sh: error: $*" >&2; exit 1; }
log() { echo "[mesh $(date +%H:%M:%S)] $*" >&2; }
PORT_HINT="set BENCH_PORT_BASE, or stop what holds them"
# shellcheck source=scripts/lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

usage() { sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

# ---------------------------------------------------------------- options
QUICK=0
NO_BUILD=0
PGO=0
KEEP_TMP=${BENCH_KEEP_TMP:-0}
ROUNDS=${BENCH_ROUNDS:-1}
CANDIDATES_ARG=${BENCH_CANDIDATES:-direct,outrider,haproxy,haproxy-hdr,nginx}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-build) NO_BUILD=1 ;;
    --pgo) PGO=1 ;;
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
(( WARMUP >= 1 )) || WARMUP=1   # the pooled-connection check needs traffic first
RATE=${BENCH_RATE:-1000}
[[ "$RATE" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RATE must be a positive integer"
RATE_CONNS=10
(( RATE % RATE_CONNS == 0 )) || die "BENCH_RATE must be a multiple of $RATE_CONNS"
RATE_PER_CONN=$(( RATE / RATE_CONNS ))

IFS=', ' read -r -a CANDIDATES <<< "$CANDIDATES_ARG"
for c in "${CANDIDATES[@]}"; do
  case "$c" in direct|outrider|haproxy|haproxy-hdr|nginx|floor) ;; *) die "unknown candidate '$c' (direct, outrider, haproxy, haproxy-hdr, nginx, floor)";; esac
done
[[ ${#CANDIDATES[@]} -gt 0 ]] || die "no candidates"

BENCH_OUT=${BENCH_OUT:-$REPO/target/bench/mesh-report.md}
case "$BENCH_OUT" in /*) ;; *) BENCH_OUT="$PWD/$BENCH_OUT" ;; esac
OUT_DIR=$(dirname "$BENCH_OUT")
RAW_OUT="${BENCH_OUT%.md}.tsv"
[[ "$RAW_OUT" == "$BENCH_OUT" ]] && RAW_OUT="$BENCH_OUT.tsv"

PORT_BASE=${BENCH_PORT_BASE:-28000}
[[ "$PORT_BASE" =~ ^[1-9][0-9]*$ ]] && (( PORT_BASE + 510 < 65536 )) || die "bad BENCH_PORT_BASE '$PORT_BASE'"
UP_H1_PORT=$((PORT_BASE + 80))
UP_H2_PORT=$((PORT_BASE + 81))
OR_OUT_PORT=$((PORT_BASE + 100))
OR_IN_PORT=$((PORT_BASE + 101))
OR_OUT_ADMIN_PORT=$((PORT_BASE + 110))
OR_OUT_METRICS_PORT=$((PORT_BASE + 111))
OR_IN_ADMIN_PORT=$((PORT_BASE + 112))
OR_IN_METRICS_PORT=$((PORT_BASE + 113))
NG_OUT_PORT=$((PORT_BASE + 200))
NG_IN_PORT=$((PORT_BASE + 201))
HA_OUT_PORT=$((PORT_BASE + 300))
HA_IN_PORT=$((PORT_BASE + 301))
FL_OUT_PORT=$((PORT_BASE + 400))
FL_IN_PORT=$((PORT_BASE + 401))
HH_OUT_PORT=$((PORT_BASE + 500))
HH_IN_PORT=$((PORT_BASE + 501))

CLK_TCK=$(getconf CLK_TCK)
LOADS=(h1 fixed newconn handshake)
# s_time sends "GET <arg> HTTP/1.0\r\n\r\n"; this argument makes that a valid HTTP/1.0
# request with a Host header (the trailing " HTTP/1.0" becomes the value of X-Pad).
STIME_WWW=$'/ HTTP/1.0\r\nHost: bench.local\r\nX-Pad:'

# ---------------------------------------------------------------- tools
ensure_tools() {
  local missing=() t
  for t in wrk:wrk h2load:nghttp2-client nginx:nginx haproxy:haproxy curl:curl timeout:coreutils openssl:openssl ss:iproute2; do
    command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing missing tools: ${missing[*]}"
    local sudo=""
    [[ $EUID -ne 0 ]] && sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 \
      || die "could not install ${missing[*]} (run: apt-get update && apt-get install -y ${missing[*]})"
  fi
  for t in wrk h2load nginx haproxy curl timeout awk openssl ss; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found"
  done
}

# ---------------------------------------------------------------- processes
LOAD_PID=""



# stop_proc NAME — SIGTERM, wait up to 5 s (then SIGKILL); sets STOP_MSG to how it ended.
STOP_MSG=""




# wait_tls NAME PID PORT — until a TCP connect to PORT succeeds (TLS listeners)
wait_tls() {
  local name=$1 pid=$2 port=$3 i
  for ((i = 0; i < 150; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited during start-up"; tail -n 30 "$TMP/$name.log" | sed 's/^/    /'
      return 1
    fi
    port_busy "$port" && return 0
    sleep 0.1
  done
  echo "$name not listening on $port after 15s"; tail -n 30 "$TMP/$name.log" | sed 's/^/    /'
  return 1
}

fill_template() { # SRC DST
  local user_line=""
  [[ $EUID -eq 0 ]] && user_line="user root;"
  sed -e "s|@TMP@|$TMP|g" -e "s|@CERTS@|$CERTS|g" \
      -e "s|@NGINX_USER@|$user_line|g" \
      -e "s|@UP_H1_PORT@|$UP_H1_PORT|g" -e "s|@UP_H2_PORT@|$UP_H2_PORT|g" \
      -e "s|@OR_OUT_PORT@|$OR_OUT_PORT|g" -e "s|@OR_IN_PORT@|$OR_IN_PORT|g" \
      -e "s|@OR_OUT_ADMIN_PORT@|$OR_OUT_ADMIN_PORT|g" -e "s|@OR_OUT_METRICS_PORT@|$OR_OUT_METRICS_PORT|g" \
      -e "s|@OR_IN_ADMIN_PORT@|$OR_IN_ADMIN_PORT|g" -e "s|@OR_IN_METRICS_PORT@|$OR_IN_METRICS_PORT|g" \
      -e "s|@NG_OUT_PORT@|$NG_OUT_PORT|g" -e "s|@NG_IN_PORT@|$NG_IN_PORT|g" \
      -e "s|@HA_OUT_PORT@|$HA_OUT_PORT|g" -e "s|@HA_IN_PORT@|$HA_IN_PORT|g" \
      -e "s|@HH_OUT_PORT@|$HH_OUT_PORT|g" -e "s|@HH_IN_PORT@|$HH_IN_PORT|g" \
      "$1" > "$2"
  local left
  left=$(grep -v '^[[:space:]]*#' "$2" | grep -o '@[A-Z0-9_]*@' | head -1 || true)
  [[ -z "$left" ]] || die "unfilled placeholder $left in $2 (from $1)"
}

# ---------------------------------------------------------------- /proc accounting
declare -A OUT_PIDS=()    # candidate -> pids of its outbound proxy (nginx: master + worker)
declare -A IN_PIDS=()     # candidate -> pids of its inbound proxy
declare -A CAND_FAIL=()
declare -A IDLE_OUT=()
declare -A IDLE_IN=()
declare -A CONN_CHECK=()  # candidate -> text of the pooled-connection check after warm-up





# established TCP connections from the outbound proxy to the inbound listener PORT
mesh_conns() { ss -Htn state established "( dport = :$1 )" 2>/dev/null | wc -l; }

# outrider inbound metrics we watch: "handshake_errors non_2xx"
or_in_counters() {
  curl -s --max-time 2 "http://127.0.0.1:$OR_IN_METRICS_PORT/metrics" 2>/dev/null | awk '
    /^outrider_tls_handshake_errors_total\{/ { h += $NF }
    /^outrider_requests_total\{/ && !/code="2[0-9][0-9]"/ { e += $NF }
    END { printf "%d %d\n", h, e }'
}
or_metric() { # PORT NAME_WITH_LABELS -> value or NA
  curl -s --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null \
    | awk -v m="$2" 'index($0, m " ") == 1 { print $NF; f = 1 } END { if (!f) print "NA" }'
}

# ---------------------------------------------------------------- candidates
out_port() {
  case $1 in
    direct) echo "$UP_H1_PORT" ;; outrider) echo "$OR_OUT_PORT" ;;
    haproxy) echo "$HA_OUT_PORT" ;; nginx) echo "$NG_OUT_PORT" ;; floor) echo "$FL_OUT_PORT" ;;
    haproxy-hdr) echo "$HH_OUT_PORT" ;;
  esac
}
in_port() {
  case $1 in
    outrider) echo "$OR_IN_PORT" ;; haproxy) echo "$HA_IN_PORT" ;; nginx) echo "$NG_IN_PORT" ;;
    floor) echo "$FL_IN_PORT" ;; haproxy-hdr) echo "$HH_IN_PORT" ;;
  esac
}
url_of() { echo "http://127.0.0.1:$(out_port "$1")/"; }

# verify NAME — an HTTP/1.1 request through the pair, and an mTLS request straight to the
# inbound listener with the client certificate, must both answer 200 "ok"
verify() {
  local c=$1 got body
  got=$(curl -s -o "$TMP/verify.body" -w '%{http_code} %{http_version}' --max-time 5 "$(url_of "$c")" 2>&1) || true
  body=$(cat "$TMP/verify.body" 2>/dev/null || true)
  if [[ "$got" != "200 1.1" || "$body" != "ok" ]]; then
    echo "HTTP/1.1 GET $(url_of "$c") answered '$got' body '${body:0:200}' (want '200 1.1' body 'ok')"
    return 1
  fi
  rm -f "$TMP/verify.body"
  [[ $c == direct ]] && return 0
  # the inbound listener with the client certificate (what the newconn load does)
  body=$(printf 'GET %s HTTP/1.0\r\n\r\n' "$STIME_WWW" | timeout 5 openssl s_client -quiet \
           -connect "127.0.0.1:$(in_port "$c")" -cert "$CERTS/client.pem" -key "$CERTS/client.key" \
           -CAfile "$CERTS/ca.pem" 2>/dev/null | tr -d '\r' || true)
  if [[ "$(head -1 <<< "$body")" != "HTTP/1."[01]" 200"* || "$(tail -1 <<< "$body")" != "ok" ]]; then
    echo "mTLS HTTP/1.0 request to the inbound listener $(in_port "$c") answered '$(head -1 <<< "$body")' ... '$(tail -1 <<< "$body")' (want 200 ... ok)"
    return 1
  fi
  # and without a client certificate it must be refused
  body=$(printf 'GET / HTTP/1.0\r\nHost: x\r\n\r\n' | timeout 5 openssl s_client -quiet \
           -connect "127.0.0.1:$(in_port "$c")" -CAfile "$CERTS/ca.pem" 2>/dev/null | tr -d '\r' || true)
  if [[ "$body" == *" 200 "* ]]; then
    echo "the inbound listener $(in_port "$c") answered 200 to a client WITHOUT a certificate"
    return 1
  fi
}

start_upstream() {
  fill_template "$BENCHES/nginx-upstream.conf" "$TMP/nginx-upstream.conf"
  nginx -e stderr -t -q -c "$TMP/nginx-upstream.conf" -p "$TMP" >"$TMP/nginx-upstream.t" 2>&1 \
    || { cat "$TMP/nginx-upstream.t" >&2; die "upstream nginx config test failed"; }
  start_proc upstream nginx -e stderr -c "$TMP/nginx-upstream.conf" -p "$TMP"
  local msg
  msg=$(wait_http upstream "$(pid_of upstream)" "http://127.0.0.1:$UP_H1_PORT/") || die "upstream: $msg"
  sleep 0.2
  read -r -a UPSTREAM_PIDS <<< "$(proc_tree "$(pid_of upstream)" | tr '\n' ' ')"
  [[ ${#UPSTREAM_PIDS[@]} -ge 2 ]] || die "upstream nginx: no worker process found"
  msg=$(verify direct) || die "upstream does not answer as expected: $msg"
}

make_certs() {
  CERTS="$TMP/certs"
  "$OUTRIDER" certs --out "$CERTS" --trust-domain bench.local client server >"$TMP/certs.log" 2>&1 \
    || { cat "$TMP/certs.log" >&2; die "outrider certs failed"; }
  local f
  for f in ca.pem client.pem client.key server.pem server.key; do
    [[ -s "$CERTS/$f" ]] || die "outrider certs did not write $f"
  done
  # haproxy wants certificate and key in one PEM file
  cat "$CERTS/client.pem" "$CERTS/client.key" > "$CERTS/client-full.pem"
  cat "$CERTS/server.pem" "$CERTS/server.key" > "$CERTS/server-full.pem"
  chmod 600 "$CERTS/client-full.pem" "$CERTS/server-full.pem"
}

# start_pair NAME — start inbound then outbound proxy, wait until ready, verify
start_pair() {
  local c=$1 msg="" pin pout
  case $c in
    direct) return 0 ;;
    outrider)
      local side
      # Their own directory, as in a deployment: outrider watches its config's directory, and
      # the tool outputs written to $TMP during the runs (h2load's per-request latency log)
      # would wake its watcher for every write.
      mkdir -p "$TMP/conf"
      for side in inbound outbound; do
        fill_template "$MESH/outrider-$side.yaml" "$TMP/conf/outrider-$side.yaml"
        if ! msg=$("$OUTRIDER" check -c "$TMP/conf/outrider-$side.yaml" 2>&1); then
          CAND_FAIL[$c]="\`outrider check\` rejected the $side config: $msg"; return 1
        fi
      done
      start_proc outrider-in "$OUTRIDER" run -c "$TMP/conf/outrider-inbound.yaml" --workers 1
      pin=$(pid_of outrider-in)
      msg=$(wait_http outrider-in "$pin" "http://127.0.0.1:$OR_IN_ADMIN_PORT/ready") || { CAND_FAIL[$c]="inbound not ready: $msg"; return 1; }
      start_proc outrider-out "$OUTRIDER" run -c "$TMP/conf/outrider-outbound.yaml" --workers 1
      pout=$(pid_of outrider-out)
      msg=$(wait_http outrider-out "$pout" "http://127.0.0.1:$OR_OUT_ADMIN_PORT/ready") || { CAND_FAIL[$c]="outbound not ready: $msg"; return 1; }
      ;;
    haproxy|haproxy-hdr)
      local side
      for side in inbound outbound; do
        fill_template "$MESH/$c-$side.cfg" "$TMP/$c-$side.cfg"
        haproxy -c -q -f "$TMP/$c-$side.cfg" >"$TMP/$c-$side.t" 2>&1 \
          || { cat "$TMP/$c-$side.t" >&2; die "$c $side config check failed"; }
      done
      # -db: foreground, single process (no master-worker), so the pid is the one doing the work
      start_proc "$c-in" haproxy -db -f "$TMP/$c-inbound.cfg"
      pin=$(pid_of "$c-in")
      msg=$(wait_tls "$c-in" "$pin" "$(in_port "$c")") || { CAND_FAIL[$c]="inbound not ready: $msg"; return 1; }
      start_proc "$c-out" haproxy -db -f "$TMP/$c-outbound.cfg"
      pout=$(pid_of "$c-out")
      msg=$(wait_http "$c-out" "$pout" "$(url_of "$c")") || { CAND_FAIL[$c]="outbound not ready: $msg"; return 1; }
      ;;
    floor)
      local id=spiffe://bench.local/sa
      start_proc floor-in "$FLOOR" inbound --listen "127.0.0.1:$FL_IN_PORT" --to "127.0.0.1:$UP_H1_PORT" \
        --ca "$CERTS/ca.pem" --cert "$CERTS/server.pem" --key "$CERTS/server.key" --identity "$id/server"
      pin=$(pid_of floor-in)
      msg=$(wait_tls floor-in "$pin" "$FL_IN_PORT") || { CAND_FAIL[$c]="inbound not ready: $msg"; return 1; }
      start_proc floor-out "$FLOOR" outbound --listen "127.0.0.1:$FL_OUT_PORT" --to "127.0.0.1:$FL_IN_PORT" \
        --ca "$CERTS/ca.pem" --cert "$CERTS/client.pem" --key "$CERTS/client.key" --identity "$id/client" \
        --peer "$id/server"
      pout=$(pid_of floor-out)
      msg=$(wait_http floor-out "$pout" "$(url_of floor)") || { CAND_FAIL[$c]="outbound not ready: $msg"; return 1; }
      ;;
    nginx)
      local side
      for side in inbound outbound; do
        fill_template "$MESH/nginx-$side.conf" "$TMP/nginx-$side.conf"
        nginx -e stderr -t -q -c "$TMP/nginx-$side.conf" -p "$TMP" >"$TMP/nginx-$side.t" 2>&1 \
          || { cat "$TMP/nginx-$side.t" >&2; die "nginx $side config test failed"; }
      done
      start_proc nginx-in nginx -e stderr -c "$TMP/nginx-inbound.conf" -p "$TMP"
      pin=$(pid_of nginx-in)
      msg=$(wait_tls nginx-in "$pin" "$NG_IN_PORT") || { CAND_FAIL[$c]="inbound not ready: $msg"; return 1; }
      start_proc nginx-out nginx -e stderr -c "$TMP/nginx-outbound.conf" -p "$TMP"
      pout=$(pid_of nginx-out)
      msg=$(wait_http nginx-out "$pout" "$(url_of nginx)") || { CAND_FAIL[$c]="outbound not ready: $msg"; return 1; }
      sleep 0.2
      ;;
  esac
  IN_PIDS[$c]=$(proc_tree "$pin" | tr '\n' ' ')
  OUT_PIDS[$c]=$(proc_tree "$pout" | tr '\n' ' ')
  if ! msg=$(verify "$c"); then
    CAND_FAIL[$c]="wrong response: $msg"
    return 1
  fi
  # shellcheck disable=SC2086
  IDLE_IN[$c]=$(status_kb VmRSS ${IN_PIDS[$c]})
  # shellcheck disable=SC2086
  IDLE_OUT[$c]=$(status_kb VmRSS ${OUT_PIDS[$c]})
  return 0
}

# check_pool NAME — after warm-up: how many mTLS connections does the pair hold open?
check_pool() {
  local c=$1 n txt
  [[ $c == direct ]] && return 0
  n=$(mesh_conns "$(in_port "$c")")
  txt="$n mTLS connection(s) from outbound to inbound after warm-up (ss)"
  if [[ $c == outrider ]]; then
    local g
    g=$(or_metric "$OR_IN_METRICS_PORT" 'outrider_connections_open{direction="inbound"}')
    txt+="; inbound /metrics: outrider_connections_open{direction=\"inbound\"} $g"
    if [[ "$g" != 1 || "$n" != 1 ]]; then
      txt+=" — WARNING: expected exactly 1 (one multiplexed h2 connection)"
      log "  $c: $txt"
    fi
  fi
  CONN_CHECK[$c]=$txt
}

# ---------------------------------------------------------------- loads


run_tool() { # LIMIT_S OUTFILE CMD...
  local limit=$1 out=$2 rc=0; shift 2
  timeout -k 5 "$limit" "$@" >"$out" 2>&1 &
  LOAD_PID=$!
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=""
  return "$rc"
}

# run_load ROUND LOAD CANDIDATE [warm] — appends one line to $TMP/results.tsv
run_load() {
  local round=$1 load=$2 c=$3 warm=${4:-}
  local d=$DUR
  [[ -n "$warm" ]] && d=$WARMUP
  local out="$TMP/run.$load.$c.$round${warm:+.warm}.out" lat="$TMP/lat.log"
  local -a po=() pi=()
  # shellcheck disable=SC2206
  po=(${OUT_PIDS[$c]:-}); pi=(${IN_PIDS[$c]:-})
  local limit=$((d + 30)) cmd=()
  case $load in
    h1) cmd=(wrk -t2 -c64 "-d${d}s" --latency "$(url_of "$c")") ;;
    fixed) cmd=(h2load --h1 -c"$RATE_CONNS" -m1 --rps "$RATE_PER_CONN" -D "$d" --log-file "$lat" "$(url_of "$c")") ;;
    newconn|handshake)
      cmd=(openssl s_time -connect "127.0.0.1:$(in_port "$c")" -cert "$CERTS/client.pem"
           -key "$CERTS/client.key" -CAfile "$CERTS/ca.pem" -new -time "$d")
      [[ $load == newconn ]] && cmd+=(-www "$STIME_WWW")
      ;;
  esac
  [[ -n "$warm" ]] && { run_tool "$limit" "$out" "${cmd[@]}" || true; return 0; }

  rm -f "$lat"
  local all=("${po[@]}" "${pi[@]}")
  local co0 ci0 up0 t0 t1 co1 ci1 up1 rc=0 m0="" m1=""
  [[ ${#all[@]} -gt 0 ]] && reset_hwm "${all[@]}"
  [[ $c == outrider ]] && m0=$(or_in_counters)
  co0=$(cpu_ticks "${po[@]}"); ci0=$(cpu_ticks "${pi[@]}"); up0=$(cpu_ticks "${UPSTREAM_PIDS[@]}")
  local st0 st1
  st0=$(machine_ticks)
  t0=$(now_s)
  run_tool "$limit" "$out" "${cmd[@]}" || rc=$?
  t1=$(now_s)
  st1=$(machine_ticks)
  co1=$(cpu_ticks "${po[@]}"); ci1=$(cpu_ticks "${pi[@]}"); up1=$(cpu_ticks "${UPSTREAM_PIDS[@]}")
  local idle_pct
  idle_pct=$(awk -v a="$st0" -v b="$st1" 'BEGIN { split(a, x, " "); split(b, y, " ");
    t = y[1] - x[1]; printf "%.1f", (t > 0) ? (y[2] - x[2]) * 100 / t : 0 }')
  local pko=NA pki=NA status=ok conns=NA
  if [[ ${#all[@]} -gt 0 ]]; then
    pko=$(status_kb VmHWM "${po[@]}"); pki=$(status_kb VmHWM "${pi[@]}")
    [[ $load == h1 || $load == fixed ]] && conns=$(mesh_conns "$(in_port "$c")")
    if ! alive_all "${all[@]}"; then
      status=crashed
      CAND_FAIL[$c]="a proxy process exited during the $load run (round $round)"
    fi
  fi
  if [[ $rc -ne 0 ]]; then
    if [[ $status == ok ]]; then status="tool-exit-$rc"; else status="$status,tool-exit-$rc"; fi
  fi
  local hs_err=NA bad_resp=NA
  if [[ $c == outrider ]]; then
    m1=$(or_in_counters)
    read -r a b <<< "$m0"; read -r x y <<< "$m1"
    hs_err=$(( x - a )); bad_resp=$(( y - b ))
  fi

  local reqs=0 rps=0 p50=NA p99=NA errors=0 secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  case $load in
    h1)
      reqs=$(awk '/ requests in /{print $1; exit}' "$out"); reqs=${reqs:-0}
      rps=$(awk '/^Requests\/sec:/{print $2; exit}' "$out"); rps=${rps:-0}
      p50=$(to_us "$(awk '$1 == "50%" {print $2; exit}' "$out")")
      p99=$(to_us "$(awk '$1 == "99%" {print $2; exit}' "$out")")
      errors=$(awk '/Socket errors:/ { gsub(/,/, ""); s += $4 + $6 + $8 + $10 }
                    /Non-2xx or 3xx responses:/ { s += $5 } END { print s + 0 }' "$out")
      ;;
    fixed)
      rps=$(awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($i == "req/s,") print $(i - 1); exit }' "$out"); rps=${rps:-0}
      reqs=$(awk '/^requests:/ { for (i = 1; i <= NF; i++) if ($i ~ /^succeeded/) print $(i - 1); exit }' "$out"); reqs=${reqs:-0}
      errors=$(awk '/^requests:/ { for (i = 1; i <= NF; i++) if ($i ~ /^(failed|errored|timeout)/) s += $(i - 1) }
                    /^status codes:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[345]xx/) s += $(i - 1) }
                    END { print s + 0 }' "$out")
      if [[ -s "$lat" ]]; then read -r p50 p99 < <(log_percentiles "$lat"); fi
      rm -f "$lat"
      ;;
    newconn|handshake)
      # "N connections in X.XXs; ... bytes read B" (the first such line: the -new phase)
      reqs=$(awk '/ connections in .*s;/ { print $1; exit }' "$out"); reqs=${reqs:-0}
      rps=$(awk -v n="$reqs" -v s="$secs" 'BEGIN { printf "%.1f", (s > 0) ? n / s : 0 }')
      if [[ $load == newconn ]]; then
        # every connection must have read a response: 200 + "ok" is > 60 bytes
        errors=$(awk -v n="$reqs" '/ connections in .* real seconds, / { for (i = 1; i <= NF; i++) if ($i == "bytes") b = $(i - 1) }
                   END { print (n > 0 && b + 0 < 60) ? n : 0 }' "$out")
      fi
      [[ $reqs -gt 0 ]] || status="${status/#ok/no-connections}"
      ;;
  esac
  # round load cand rps reqs p50 p99 out_ticks in_ticks up_ticks wall errors out_peak in_peak conns hs_err bad_resp status idle_pct
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$round" "$load" "$c" "$rps" "$reqs" "$p50" "$p99" "$((co1 - co0))" "$((ci1 - ci0))" "$((up1 - up0))" \
    "$secs" "$errors" "$pko" "$pki" "$conns" "$hs_err" "$bad_resp" "$status" "$idle_pct" >> "$TMP/results.tsv"
  local cpu_us="—"
  if [[ $c != direct && $reqs -gt 0 ]]; then
    if [[ $load == newconn || $load == handshake ]]; then
      cpu_us=$(awk -v t=$((ci1 - ci0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { printf "in %.1f", t / hz * 1e6 / n }')
    else
      cpu_us=$(awk -v o=$((co1 - co0)) -v i=$((ci1 - ci0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f+%.1f", o / hz * 1e6 / n, i / hz * 1e6 / n }')
    fi
  fi
  log "  $load $c: $rps /s, p50 ${p50}us, p99 ${p99}us, cpu ${cpu_us}us, errors $errors, conns $conns$( [[ $c == outrider ]] && echo ", outrider inbound: handshake errors +$hs_err, non-2xx +$bad_resp"), $status"
  if [[ $status != ok ]]; then
    log "  $c $load: $status; tool output (tail):"; tail -n 20 "$out" | cut -c1-300 | sed 's/^/      /' >&2
  fi
}

# ---------------------------------------------------------------- report
write_report() {
  local report=$1 raw=$2
  {
    echo "# outrider two-hop mTLS mesh benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); host: $(nproc) cores, $(uname -sr); load avg before: $LOADAVG_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- outrider: ${OUTRIDER_DESC:-not run}; commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)$( [[ -n "$(git -C "$REPO" status --porcelain 2>/dev/null | head -1)" ]] && echo ' (dirty tree)')"
    echo "- peers: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v 2>&1 | head -1 | awk '{print $1, $2, $3}'); load: $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $(h2load --version 2>&1 | head -1), $(openssl version | awk '{print $1, $2}') s_time"
    echo "- path: load tool → outbound proxy (plain HTTP/1.1) → mTLS → inbound proxy → upstream nginx (HTTP/1.1 keep-alive). outrider and haproxy: HTTP/2 between the proxies (ALPN h2); nginx: HTTP/1.1 (it cannot proxy to h2). Certificates from \`outrider certs\` (ECDSA P-256, TLS 1.3)."
    echo "- every proxy and the upstream run 1 worker/thread; loopback only; ${DUR}s per measured run, ${WARMUP}s h1 warm-up per candidate, ${ROUNDS} round(s), candidates interleaved within each load (proxy pairs rotated per round, \`direct\` last: a run right after it is slower)"
    echo "- CPU µs/req = (utime+stime of all processes of BOTH proxies after − before the run) / requests completed (shown as total = outbound + inbound); for the new-connection runs the inbound proxy only, per connection"
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
      function mib(kb) { return (kb == "NA" || kb == "" || kb == 0) ? "—" : sprintf("%.1f", kb / 1024) }
      function us(t, n) { return (n == 0 || n == "") ? "NA" : t / hz * 1e6 / n }
      function fmt1(x) { return (x == "NA" || x == "") ? "—" : sprintf("%.1f", x) }
      function warn(c, l) { return (bad[c, l] != "" || errs[c, l] > 0) ? " ⚠" : "" }
      {
        c = $3; l = $2
        add(c SUBSEP l SUBSEP "rps", $4); add(c SUBSEP l SUBSEP "p50", $6); add(c SUBSEP l SUBSEP "p99", $7)
        reqs[c, l] += $5; otk[c, l] += $8; itk[c, l] += $9; utk[c, l] += $10; wall[c, l] += $11; errs[c, l] += $12
        if ($13 != "NA" && $13 + 0 > pko[c, l]) pko[c, l] = $13 + 0
        if ($14 != "NA" && $14 + 0 > pki[c, l]) pki[c, l] = $14 + 0
        if ($15 != "NA") { cn[c, l] = cn[c, l] (cn[c, l] == "" ? "" : "/") $15 }
        if ($16 != "NA") { hse[c, l] += $16; nb[c, l] += $17; om[c] = 1 }
        if ($18 != "ok") bad[c, l] = bad[c, l] (bad[c, l] == "" ? "" : ",") $18
        add(c SUBSEP l SUBSEP "idle", $19)
        seen[c, l] = 1
      }
      END {
        nc = split(order, cands, " ")
        ni = split(idle, il, " "); for (i = 1; i <= ni; i++) { split(il[i], kv, "="); split(kv[2], oi, "/"); idleo[kv[1]] = oi[1]; idlei[kv[1]] = oi[2] }
        nf = split(fails, fl, " "); for (i = 1; i <= nf; i++) failed[fl[i]] = 1
        title["h1"] = sprintf("HTTP/1.1 keep-alive into the outbound proxy, closed loop — `wrk -t2 -c64 -d%ss --latency`", dur)
        title["fixed"] = sprintf("HTTP/1.1 at a fixed %d req/s — `h2load --h1 -c%d -m1 --rps %d -D %s` (latency per request from `--log-file`)", rate, rconns, rper, dur)
        for (li = 1; li <= 2; li++) {
          l = (li == 1) ? "h1" : "fixed"
          print "## " title[l]; print ""
          print "| candidate | req/s | ×haproxy | p50 | p99 | CPU µs/req (out + in) | ×haproxy | core % out / in | upstream core % | machine idle % | mTLS conns | errors | peak RSS MiB out / in | status |"
          print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
          for (ci = 1; ci <= nc; ci++) { c = cands[ci]; if (seen[c, l]) { R[c, l] = med(c SUBSEP l SUBSEP "rps"); P99[c, l] = med(c SUBSEP l SUBSEP "p99"); if (c != "direct") CU[c, l] = us(otk[c, l] + itk[c, l], reqs[c, l]) } }
          for (ci = 1; ci <= nc; ci++) {
            c = cands[ci]
            if (!seen[c, l]) { printf "| %s | — | — | — | — | — | — | — | — | — | — | — | — | %s |\n", c, (failed[c] ? "FAILED (see below)" : "not run"); continue }
            p50 = med(c SUBSEP l SUBSEP "p50")
            idl = med(c SUBSEP l SUBSEP "idle")
            if (c == "direct") { cu = "—"; pc = "—"; cr = "—"; pk = "—" }
            else {
              cu = sprintf("%.1f (%.1f + %.1f)", CU[c, l], us(otk[c, l], reqs[c, l]), us(itk[c, l], reqs[c, l]))
              cr = ratio(CU[c, l], CU["haproxy", l])
              pc = (wall[c, l] == 0) ? "—" : sprintf("%.0f%% / %.0f%%", otk[c, l] / hz / wall[c, l] * 100, itk[c, l] / hz / wall[c, l] * 100)
              pk = mib(pko[c, l]) " / " mib(pki[c, l])
            }
            uc = (wall[c, l] == 0) ? "—" : sprintf("%.0f%%", utk[c, l] / hz / wall[c, l] * 100)
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s |\n", c, num(R[c, l]), ratio(R[c, l], R["haproxy", l]),
              lat(p50), lat(P99[c, l]), cu, cr, pc, uc, (idl == "NA" ? "—" : sprintf("%.0f%%", idl)), (cn[c, l] == "" ? "—" : cn[c, l]), errs[c, l], pk, (bad[c, l] == "" ? "ok" : bad[c, l])
          }
          print ""
        }
        print "## New mTLS connections per second into the inbound proxy — `openssl s_time -new -time " dur "` with the client certificate, one connection at a time"
        print ""
        print "| candidate | full handshake + 1 request: conn/s | ×haproxy | inbound CPU µs/conn | ×haproxy | ≈ conn/s per inbound core | handshake only: conn/s | ×haproxy | inbound CPU µs/conn | errors | status |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        for (ci = 1; ci <= nc; ci++) {
          c = cands[ci]; if (c == "direct") continue
          for (k = 1; k <= 2; k++) { l = (k == 1) ? "newconn" : "handshake"
            H[c, l] = seen[c, l] ? med(c SUBSEP l SUBSEP "rps") : "NA"; HC[c, l] = seen[c, l] ? us(itk[c, l], reqs[c, l]) : "NA" }
        }
        for (ci = 1; ci <= nc; ci++) {
          c = cands[ci]; if (c == "direct") continue
          if (!seen[c, "newconn"] && !seen[c, "handshake"]) { printf "| %s | — | — | — | — | — | — | — | — | — | %s |\n", c, (failed[c] ? "FAILED (see below)" : "not run"); continue }
          st = bad[c, "newconn"] (bad[c, "newconn"] != "" && bad[c, "handshake"] != "" ? "," : "") bad[c, "handshake"]
          printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", c,
            num(H[c, "newconn"]), ratio(H[c, "newconn"], H["haproxy", "newconn"]), fmt1(HC[c, "newconn"]), ratio(HC[c, "newconn"], HC["haproxy", "newconn"]),
            ((HC[c, "newconn"] == "NA" || HC[c, "newconn"] == 0) ? "—" : sprintf("%.0f", 1e6 / HC[c, "newconn"])),
            num(H[c, "handshake"]), ratio(H[c, "handshake"], H["haproxy", "handshake"]), fmt1(HC[c, "handshake"]),
            errs[c, "newconn"] + errs[c, "handshake"], (st == "" ? "ok" : st)
        }
        print ""
        print "## Summary (ratios to the haproxy pair, this run)"; print ""
        print "| candidate | h1 req/s | ×haproxy | ×direct | CPU µs/req h1 (both proxies) | ×haproxy | p99 @" rate "/s | ×haproxy | new conn/s | ×haproxy | idle RSS MiB out / in |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (ci = 1; ci <= nc; ci++) {
          c = cands[ci]
          printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c,
            num(R[c, "h1"]) warn(c, "h1"), ratio(R[c, "h1"], R["haproxy", "h1"]), ratio(R[c, "h1"], R["direct", "h1"]),
            fmt1(CU[c, "h1"]), ratio(CU[c, "h1"], CU["haproxy", "h1"]),
            lat(P99[c, "fixed"]) warn(c, "fixed"), ratio(P99[c, "fixed"], P99["haproxy", "fixed"]),
            (c == "direct" ? "—" : num(H[c, "newconn"]) warn(c, "newconn")), (c == "direct" ? "—" : ratio(H[c, "newconn"], H["haproxy", "newconn"])),
            (c == "direct" ? "—" : mib(idleo[c]) " / " mib(idlei[c]))
        }
        if (R["haproxy-hdr", "h1"] != "" && R["haproxy-hdr", "h1"] != "NA") {
          print ""
          print "Against the pair doing the same header work (`haproxy-hdr`): "
          print ""
          print "| candidate | h1 req/s ×haproxy-hdr | CPU µs/req ×haproxy-hdr | p99 @" rate "/s ×haproxy-hdr |"
          print "|---|---:|---:|---:|"
          for (ci = 1; ci <= nc; ci++) {
            c = cands[ci]
            if (c == "direct" || c == "haproxy-hdr") continue
            printf "| %s | %s | %s | %s |\n", c, ratio(R[c, "h1"], R["haproxy-hdr", "h1"]),
              ratio(CU[c, "h1"], CU["haproxy-hdr", "h1"]), ratio(P99[c, "fixed"], P99["haproxy-hdr", "fixed"])
          }
        }
        print ""
        print "⚠ = that run had errors or a bad status (see its table). req/s and conn/s ×haproxy > 1 is better; CPU and p99 ×haproxy < 1 is better. \"mTLS conns\" = established connections from the outbound to the inbound proxy at the end of each run (`ss`; one figure per round). Closed-loop latency is at saturation; the fixed-rate run is the latency figure."
        if (length(om) > 0) {
          print ""
          for (c in om) {
            printf "outrider inbound `/metrics` deltas over the measured runs (%s): TLS handshake errors", c
            for (k = 1; k <= 4; k++) { l = (k == 1) ? "h1" : (k == 2) ? "fixed" : (k == 3) ? "newconn" : "handshake"; if (seen[c, l]) printf " %s %d,", l, hse[c, l] }
            printf " non-2xx responses"
            for (k = 1; k <= 4; k++) { l = (k == 1) ? "h1" : (k == 2) ? "fixed" : (k == 3) ? "newconn" : "handshake"; if (seen[c, l]) printf " %s %d%s", l, nb[c, l], (k < 4 ? "," : "") }
            print ""
          }
        }
      }' "$raw"
    echo
    echo "## Notes"
    echo
    echo "- Identity checks differ: outrider's outbound checks that the server's SPIFFE ID equals the backend's \`tls.identity\` and the inbound extracts and checks the caller's single SPIFFE URI SAN (and sets \`x-outrider-peer-identity\`); haproxy verifies the chain against the CA only (no URI SAN check: not native); nginx B verifies the client chain, nginx A does not verify B at all (\`proxy_ssl_verify\` would check a DNS name, and the certificates carry only a URI SAN). outrider does the most work per handshake."
    if has_candidate haproxy-hdr; then
      echo "- \`haproxy-hdr\` is the haproxy pair configured to do the per-request header work outrider's contract asks (SPEC §6; \`benches/mesh/haproxy-hdr-*.cfg\`): \`x-request-id\` kept or generated (a random UUID) and echoed on the response, \`traceparent\` continued or started with a new random span id on each proxy, \`x-forwarded-for\` appended and the caller's identity set for the app on the inbound (the certificate's subject DN: haproxy 2.6 has no URI SAN fetch). The plain \`haproxy\` pair does none of these; outrider's pair does all of them (and validates \`traceparent\`, continues B3, counts per route and backend)."
    fi
    if has_candidate floor; then
      echo "- \`floor\` is not a product: \`examples/mesh_floor.rs\`, outrider's transport (the same rustls configurations and SPIFFE checks, \`h2\` client settings, hyper servers, early connection polls) with no routing, policies, retries, telemetry, request ids or access log. Its gap to haproxy is the cost of the stack (tokio, hyper, h2, rustls); outrider's gap to it is outrider's own request path."
    fi
    echo "- new-connection runs: \`openssl s_time\` is one sequential client (its own handshake CPU is on the other core), so conn/s is bounded by the client and the round trips as much as by the server; \"≈ conn/s per inbound core\" (10⁶ / inbound CPU µs per connection) estimates the server-side capacity. \"handshake + 1 request\" sends \`GET / HTTP/1.0\` with a Host header and reads the answer to the close, so every connection is a completed server-side handshake, a proxied request and a close. \"handshake only\" closes as soon as the client's side is done (TLS 1.3: before the server has read the client's Finished), so it overstates the server's rate and the server may count aborted handshakes."
    echo "- RSS is the sum of VmRSS over the proxy's processes (nginx: master + worker); \"peak\" is VmHWM after resetting it before each run."
    echo "- CPU is read in clock ticks of $((1000 / CLK_TCK)) ms: in the ${DUR}s fixed-rate run that is ±$(awk -v hz="$CLK_TCK" -v n=$((RATE * DUR)) 'BEGIN { printf "%.1f", 1e6 / hz / n }') µs/req; the closed-loop figures are far more precise."
    local c
    for c in "${RUN_CANDS[@]}"; do
      [[ $c == direct ]] && continue
      echo "- $c: pooled-connection check: ${CONN_CHECK[$c]:-—}; shutdown: outbound ${SHUTDOWN[$c-out]:-?}, inbound ${SHUTDOWN[$c-in]:-?}; log bytes out/in: ${LOG_BYTES[$c-out]:-0}/${LOG_BYTES[$c-in]:-0}"
    done
    awk -F'\t' -v hz="$CLK_TCK" '$3 != "direct" && $11 > 0 && $10 / hz / $11 > 0.9 {
        printf "- WARNING: the upstream used %.0f%% of a core during the %s run through %s (round %s): it may have been the bottleneck\n", $10 / hz / $11 * 100, $2, $3, $1 }' "$raw"
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

# outrider is always needed: its `certs` subcommand makes the certificates for every pair
if [[ -n "${OUTRIDER_BIN:-}" ]]; then
  OUTRIDER=$OUTRIDER_BIN
  OUTRIDER_DESC="$OUTRIDER_BIN (OUTRIDER_BIN)"
elif [[ $PGO == 1 ]]; then
  log "building outrider with PGO: scripts/build-pgo.sh"
  OUTRIDER=$("$REPO/scripts/build-pgo.sh") || die "scripts/build-pgo.sh failed"
  OUTRIDER_DESC="scripts/build-pgo.sh (profile-guided)"
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
FLOOR=""
if has_candidate floor; then
  if [[ -n "${FLOOR_BIN:-}" ]]; then
    FLOOR=$FLOOR_BIN
  else
    FLOOR="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/mesh_floor"
    if [[ $NO_BUILD == 0 ]]; then
      log "building the floor: cargo build --release --features jemalloc --example mesh_floor"
      (cd "$REPO" && cargo build --release --features jemalloc --example mesh_floor) >&2 \
        || die "cargo build --release --features jemalloc --example mesh_floor failed"
    fi
  fi
  [[ -x "$FLOOR" ]] || die "mesh_floor binary not found or not executable: $FLOOR (set FLOOR_BIN)"
fi

ports=("$UP_H1_PORT" "$UP_H2_PORT")
has_candidate outrider && ports+=("$OR_OUT_PORT" "$OR_IN_PORT" "$OR_OUT_ADMIN_PORT" "$OR_OUT_METRICS_PORT" "$OR_IN_ADMIN_PORT" "$OR_IN_METRICS_PORT")
has_candidate nginx && ports+=("$NG_OUT_PORT" "$NG_IN_PORT")
has_candidate haproxy && ports+=("$HA_OUT_PORT" "$HA_IN_PORT")
has_candidate floor && ports+=("$FL_OUT_PORT" "$FL_IN_PORT")
has_candidate haproxy-hdr && ports+=("$HH_OUT_PORT" "$HH_IN_PORT")
check_ports "${ports[@]}"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TMP=$(mktemp -d "${TMPDIR:-/tmp}/outrider-mesh.XXXXXX")
: > "$TMP/results.tsv"
log "temp dir: $TMP; ${DUR}s per run; candidates: ${CANDIDATES[*]}; rounds: $ROUNDS"
# Run a private copy, so a rebuild during the run (cargo in another shell) cannot swap it.
cp "$OUTRIDER" "$TMP/outrider-bin" || die "cannot copy $OUTRIDER"
OUTRIDER_DESC="$OUTRIDER_DESC; binary built $(date -u -r "$OUTRIDER" '+%Y-%m-%d %H:%M:%S UTC'), $(( $(stat -c %s "$OUTRIDER") / 1024 )) KiB"
OUTRIDER="$TMP/outrider-bin"
if [[ -n "$FLOOR" ]]; then
  cp "$FLOOR" "$TMP/floor-bin" || die "cannot copy $FLOOR"
  FLOOR="$TMP/floor-bin"
fi

make_certs
start_upstream
log "upstream nginx up (pids ${UPSTREAM_PIDS[*]})"

RUN_CANDS=()
for c in "${CANDIDATES[@]}"; do
  if start_pair "$c"; then
    RUN_CANDS+=("$c")
    log "$c ready (out pids: ${OUT_PIDS[$c]:-none}; in pids: ${IN_PIDS[$c]:-none}; idle RSS out/in ${IDLE_OUT[$c]:-—}/${IDLE_IN[$c]:-—} kB)"
  else
    log "$c FAILED: ${CAND_FAIL[$c]}"
  fi
done
[[ ${#RUN_CANDS[@]} -gt 0 ]] || die "no candidate could be started"

log "warm-up (${WARMUP}s of h1 per candidate), then the pooled-connection check"
for c in "${RUN_CANDS[@]}"; do
  run_load 0 h1 "$c" warm
  check_pool "$c"
  [[ -n "${CONN_CHECK[$c]:-}" ]] && log "  $c: ${CONN_CHECK[$c]}"
done

# The proxy pairs rotate; `direct` runs last in every load: a run right after it measured ~15%
# fewer req/s for the same pair (its 140k req/s leave the machine slower for a while), and
# with `direct` in the rotation one pair followed it in most rounds.
PAIRS=()
for c in "${RUN_CANDS[@]}"; do [[ $c == direct ]] || PAIRS+=("$c"); done
n=${#PAIRS[@]}
for ((round = 1; round <= ROUNDS; round++)); do
  for load in "${LOADS[@]}"; do
    log "round $round/$ROUNDS, load $load"
    order=()
    for ((i = 0; i < n; i++)); do order+=("${PAIRS[$(((i + round - 1) % n))]}"); done
    has_candidate direct && [[ -z "${CAND_FAIL[direct]:-}" ]] && order+=(direct)
    for c in "${order[@]}"; do
      [[ $c == direct && ( $load == newconn || $load == handshake ) ]] && continue
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
  for side in out in; do
    LOG_BYTES[$c-$side]=$(stat -c %s "$TMP/$c-$side.log" 2>/dev/null || echo 0)
    stop_proc "$c-$side"
    SHUTDOWN[$c-$side]=$STOP_MSG
    log "$c-$side $STOP_MSG"
  done
done

FAIL_LIST=""
for c in "${CANDIDATES[@]}"; do [[ -n "${CAND_FAIL[$c]:-}" ]] && FAIL_LIST+="$c "; done
FAIL_LIST=${FAIL_LIST% }
IDLE_LIST=""
for c in "${!IDLE_OUT[@]}"; do IDLE_LIST+="$c=${IDLE_OUT[$c]}/${IDLE_IN[$c]} "; done

mkdir -p "$OUT_DIR"
cp "$TMP/results.tsv" "$RAW_OUT"
write_report "$BENCH_OUT" "$TMP/results.tsv"
mkdir -p "$OUT_DIR/mesh-logs"
for f in "$TMP"/*.log "$TMP"/*.yaml "$TMP"/conf/*.yaml "$TMP"/*.conf "$TMP"/*.cfg; do
  [[ -f "$f" ]] || continue
  tail -n 2000 "$f" > "$OUT_DIR/mesh-logs/$(basename "$f")"
done
echo
cat "$BENCH_OUT"
log "report: $BENCH_OUT (raw: $RAW_OUT, logs and configs: $OUT_DIR/mesh-logs/)"
[[ -z "$FAIL_LIST" ]] || exit 2
