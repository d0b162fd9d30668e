#!/usr/bin/env bash
# Installs what the test suite needs (promtool from Debian's `prometheus` package; openssl,
# which writes the RSA / PKCS#1 / SEC1 keys of the key-format tests) and runs
# every test: unit tests, the integration suite (real listeners on 127.0.0.1:0), CLI tests.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "scripts/test.sh: need root (or sudo) to run: $*" >&2; exit 1; fi
}

apt_updated=0
need_pkg() { # need_pkg COMMAND DEBIAN_PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  echo "scripts/test.sh: installing $2 (for $1)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1 || { echo "scripts/test.sh: $1 still missing after installing $2" >&2; exit 1; }
}

need_pkg promtool prometheus
need_pkg openssl openssl

# Prometheus scrape config, alert rules (promtool check + unit tests) and the dashboard.
scripts/check-deploy.sh

cargo test --locked "$@"
