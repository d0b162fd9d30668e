#!/usr/bin/env bash
# Overhead of the access log and OTLP span export on the proxied HTTP/1.1 path, measured as
# CPU µs per request and req/s of outrider (1 worker) with and without them, interleaved in one
# run (the machine is noisy: compare ratios within a run). Loopback only, bounded in time.
# Usage: scripts/bench-observability.sh [ROUNDS]      (OUTRIDER_BIN to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BIN=${OUTRIDER_BIN:-target/release/outrider}
[ -n "${OUTRIDER_BIN:-}" ] || cargo build --release --features jemalloc
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "needs wrk and nginx (apt-get install wrk nginx)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'nginx -c "$tmp/nginx.conf" -s stop 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
cat > "$tmp/nginx.conf" <<NGINX
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:29580; keepalive_requests 1000000; location / { return 200 "ok"; } } }
NGINX
nginx -c "$tmp/nginx.conf"
base="version: 1
admin: { listen: 127.0.0.1:29500 }
metrics: { listen: 127.0.0.1:29590 }
outbound:
  listen: 127.0.0.1:29600
  routes: [{ name: bench, match: { path_prefix: / }, to: [{ backend: up }] }]
backends: [{ name: up, discovery: { static: [\"127.0.0.1:29580\"] }, protocol: http1 }]"
echo "$base" > "$tmp/base.yaml"
# The upstream nginx doubles as the OTLP sink (it answers 200 to the POSTs).
printf 'access_log: { path: %s/access.log }\n%s\n' "$tmp" "$base" > "$tmp/log.yaml"
printf 'tracing: { otlp: { endpoint: "http://127.0.0.1:29580/v1/traces" } }\n%s\n' "$base" > "$tmp/otlp.yaml"
printf 'access_log: { path: %s/access.log }\ntracing: { otlp: { endpoint: "http://127.0.0.1:29580/v1/traces" } }\n%s\n' "$tmp" "$base" > "$tmp/both.yaml"
run() {
  "$BIN" run -c "$tmp/$1.yaml" --workers 1 2>/dev/null & local pid=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:29500/ready >/dev/null && break; sleep 0.05; done
  wrk -t2 -c64 -d2s http://127.0.0.1:29600/ >/dev/null 2>&1
  read -r u s < <(awk '{print $14, $15}' "/proc/$pid/stat")
  local out; out=$(timeout 30 wrk -t2 -c64 -d5s http://127.0.0.1:29600/ 2>&1)
  read -r u2 s2 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  local reqs rps; reqs=$(awk '/requests in/{print $1}' <<<"$out"); rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  local ticks=$((u2 + s2 - u - s)) hz; hz=$(getconf CLK_TCK)
  printf '| %s | %s | %s |\n' "$1" "$rps" "$(echo "scale=2; $ticks * 1000000 / $hz / $reqs" | bc)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$tmp/access.log"
}
echo "| config | req/s | CPU µs/req |"
echo "|---|---:|---:|"
for _ in $(seq "$ROUNDS"); do for c in base log otlp both; do run "$c"; done; done
