#!/usr/bin/env bash
# MCP classification overhead: 1 KiB `tools/call` POSTs through outrider (1 worker) with
# `content-type: application/json` (read, classified, forwarded byte for byte) versus the same
# bytes as `application/octet-stream` (streamed untouched), interleaved in one run.
# Usage: scripts/bench-mcp.sh [ROUNDS]      (OUTRIDER_BIN to skip the build)
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
http { access_log off; client_body_buffer_size 16k;
  server { listen 127.0.0.1:29780; keepalive_requests 1000000; location / { return 200 "{}"; } } }
NGINX
nginx -c "$tmp/nginx.conf"
cat > "$tmp/outrider.yaml" <<YAML
version: 1
admin: { listen: 127.0.0.1:29700 }
metrics: { listen: 127.0.0.1:29790 }
outbound:
  listen: 127.0.0.1:29800
  routes: [{ name: mcp, match: { path_prefix: / }, to: [{ backend: up }] }]
backends: [{ name: up, discovery: { static: ["127.0.0.1:29780"] }, protocol: http1 }]
YAML
"$BIN" run -c "$tmp/outrider.yaml" --workers 1 2>/dev/null & pid=$!
for _ in $(seq 100); do curl -sf 127.0.0.1:29700/ready >/dev/null && break; sleep 0.05; done
# A 1 KiB tools/call.
pad=$(head -c 900 /dev/zero | tr '\0' 'x')
body="{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"analyze_text\",\"arguments\":{\"text\":\"$pad\"}}}"
for ct in application/json application/octet-stream; do
  cat > "$tmp/${ct//\//-}.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "$ct"
wrk.body = '$body'
LUA
done
run() {
  wrk -t2 -c64 -d1s -s "$tmp/${1//\//-}.lua" http://127.0.0.1:29800/mcp >/dev/null 2>&1
  read -r u s < <(awk '{print $14, $15}' "/proc/$pid/stat")
  local out; out=$(timeout 30 wrk -t2 -c64 -d5s -s "$tmp/${1//\//-}.lua" http://127.0.0.1:29800/mcp 2>&1)
  read -r u2 s2 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  local reqs rps hz; reqs=$(awk '/requests in/{print $1}' <<<"$out"); rps=$(awk '/Requests\/sec/{print $2}' <<<"$out"); hz=$(getconf CLK_TCK)
  printf '| %s | %s | %s |\n' "$1" "$rps" "$(echo "scale=2; ($u2 + $s2 - $u - $s) * 1000000 / $hz / $reqs" | bc)"
}
echo "| content-type (1 KiB tools/call) | req/s | CPU µs/req |"
echo "|---|---:|---:|"
for _ in $(seq "$ROUNDS"); do run application/json; run application/octet-stream; done
curl -s 127.0.0.1:29790/metrics | grep -E '^outrider_requests_total.*tools/call' | head -2
