#!/usr/bin/env bash
# scripts/build-pgo.sh — a profile-guided (PGO) release build of outrider.
#
#   1. builds outrider instrumented (rustc -Cprofile-generate), release + jemalloc;
#   2. trains it on the two-hop mTLS mesh: scripts/bench-mesh.sh with the outrider pair only
#      (HTTP/1.1 closed loop, a fixed 1,000 req/s, new mTLS connections, handshakes), then on
#      MCP classification (scripts/bench-mcp.sh) and the access log and OTLP export
#      (scripts/bench-observability.sh), so that those paths are not laid out as cold code;
#      every outrider stops on SIGTERM, which writes its profile;
#   3. merges the profiles (llvm-profdata from rustup's llvm-tools component, added if missing);
#   4. builds again with -Cprofile-use. The binary: target/pgo/<host triple>/release/outrider.
#
# Built with an explicit --target so that the profiling flags reach outrider's crates only,
# not build scripts and proc macros. Needs what bench-mesh.sh needs (nginx, wrk, h2load,
# openssl, ss) and rustup. Takes two release builds plus ~1.5 min of training.
#
# Usage: scripts/build-pgo.sh            then e.g.
#        OUTRIDER_BIN=target/pgo/x86_64-unknown-linux-gnu/release/outrider \
#          scripts/bench-mesh.sh --no-build
# Environment: PGO_TRAIN_SECONDS (per training load, default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

log() { echo "[pgo $(date -u +%H:%M:%S)] $*" >&2; }

HOST=$(rustc -vV | sed -n 's/^host: //p')
SYSROOT=$(rustc --print sysroot)
PROFDATA="$SYSROOT/lib/rustlib/$HOST/bin/llvm-profdata"
if [ ! -x "$PROFDATA" ]; then
  log "adding rustup component llvm-tools (for llvm-profdata)"
  rustup component add llvm-tools-preview >&2
fi
[ -x "$PROFDATA" ] || { echo "scripts/build-pgo.sh: $PROFDATA still missing" >&2; exit 1; }

WORK="$REPO/target/pgo-work"
RAW="$WORK/raw"
rm -rf "$WORK"
mkdir -p "$RAW"

log "1/4 instrumented build"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$RAW" CARGO_TARGET_DIR="$REPO/target/pgo-gen" \
  cargo build --release --locked --features jemalloc --bin outrider --target "$HOST" >&2
GEN="$REPO/target/pgo-gen/$HOST/release/outrider"

log "2/4 training: the mesh (bench-mesh.sh, outrider pair only), MCP, access log + OTLP"
OUTRIDER_BIN="$GEN" BENCH_DURATION="${PGO_TRAIN_SECONDS:-5}" BENCH_ROUNDS=1 \
  BENCH_OUT="$WORK/train-report.md" \
  scripts/bench-mesh.sh --candidates outrider --no-build > /dev/null
OUTRIDER_BIN="$GEN" scripts/bench-mcp.sh 1 > /dev/null
OUTRIDER_BIN="$GEN" scripts/bench-observability.sh 1 > /dev/null
ls "$RAW"/*.profraw > /dev/null 2>&1 || {
  echo "scripts/build-pgo.sh: the training run wrote no profile" >&2; exit 1; }

log "3/4 merging $(ls "$RAW"/*.profraw | wc -l) profiles"
"$PROFDATA" merge -o "$WORK/outrider.profdata" "$RAW"/*.profraw

log "4/4 optimized build"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$WORK/outrider.profdata" \
  CARGO_TARGET_DIR="$REPO/target/pgo" \
  cargo build --release --locked --features jemalloc --bin outrider --target "$HOST" >&2
OUT="$REPO/target/pgo/$HOST/release/outrider"
log "done: $OUT"
echo "$OUT"
