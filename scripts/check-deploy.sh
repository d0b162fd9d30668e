#!/usr/bin/env bash
# Checks the monitoring artifacts under deploy/ (SPEC §8, §9):
#   * promtool check config deploy/prometheus/prometheus.yaml
#   * promtool check rules  deploy/prometheus/outrider-rules.yaml
#   * promtool test rules   deploy/prometheus/outrider-rules.test.yaml
#   * python3 -m json.tool  deploy/grafana/outrider-dashboard.json
#   * every PromQL expression in the dashboard (panels, annotations, template variables) and in
#     the rules file references only SPEC §8 metric names, `up`, `process_*` (and, in the rules
#     file, the series it records itself).
# Exits non-zero on the first failure. Run from anywhere; paths are resolved from the repo root.
# Usage: scripts/check-deploy.sh            (PROMTOOL=/path/to/promtool to use another build)
set -euo pipefail
cd "$(dirname "$0")/.."

PROMTOOL=${PROMTOOL:-promtool}
PROM_DIR=deploy/prometheus
CONFIG=$PROM_DIR/prometheus.yaml
RULES=$PROM_DIR/outrider-rules.yaml
RULE_TESTS=$PROM_DIR/outrider-rules.test.yaml
DASHBOARD=deploy/grafana/outrider-dashboard.json

command -v "$PROMTOOL" >/dev/null 2>&1 || {
  echo "check-deploy: $PROMTOOL not found (Debian/Ubuntu: apt-get install prometheus)" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "check-deploy: python3 not found" >&2; exit 1; }

step() { printf '\n== %s\n' "$*"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# -------------------------------------------------------------------- scrape config
step "promtool check config $CONFIG"
if "$PROMTOOL" check config "$CONFIG" >"$tmp/config.out" 2>&1; then
  cat "$tmp/config.out"
elif grep -q 'field kubernetes_sd_configs not found' "$tmp/config.out"; then
  # Debian's prometheus package is built without Kubernetes service discovery, so its promtool
  # cannot parse kubernetes_sd_configs. Check everything else (relabel rules, rule_files,
  # static job) by swapping the discovery block for an equivalent empty file_sd block. The copy
  # sits next to the original so relative rule_files paths resolve the same way.
  echo "check-deploy: this promtool lacks Kubernetes SD (Debian build); re-checking with"
  echo "check-deploy: kubernetes_sd_configs replaced by an empty file_sd_configs block."
  echo "check-deploy: set PROMTOOL to an upstream promtool for the full check."
  printf '[]\n' >"$tmp/k8s-placeholder.json"
  copy=$(mktemp "$PROM_DIR/.check-config.XXXXXX.yaml")
  trap 'rm -rf "$tmp" "$copy"' EXIT
  sed -E \
    -e 's/^([[:space:]]*)kubernetes_sd_configs:/\1file_sd_configs:/' \
    -e "s#^([[:space:]]*)- role: (pod|node|service|endpoints|endpointslice|ingress)[[:space:]]*\$#\\1- files: [\"$tmp/k8s-placeholder.json\"]#" \
    "$CONFIG" >"$copy"
  if grep -qE '^[[:space:]]*(role|namespaces|selectors|api_server|kubeconfig_file):' "$copy"; then
    echo "check-deploy: kubernetes_sd_configs uses options this fallback cannot rewrite" >&2; exit 1
  fi
  "$PROMTOOL" check config "$copy"
else
  cat "$tmp/config.out" >&2
  exit 1
fi

# -------------------------------------------------------------------- rules
step "promtool check rules $RULES"
"$PROMTOOL" check rules "$RULES"

step "promtool test rules $RULE_TESTS"
"$PROMTOOL" test rules "$RULE_TESTS"

# -------------------------------------------------------------------- dashboard
step "python3 -m json.tool $DASHBOARD"
python3 -m json.tool "$DASHBOARD" >/dev/null
echo "  SUCCESS: valid JSON"

step "metric names in dashboard and rules (SPEC §8 + up + process_*)"
python3 - "$DASHBOARD" "$RULES" <<'PY'
import json, re, sys

# SPEC §8 metric names (counters with _total, histogram series expanded), `up`, process_*.
SPEC_METRICS = {
    "outrider_requests_total",
    # extension (docs/metrics.md): rejected/applied certificate rotations
    "outrider_tls_rotations_total",
    # extension (docs/metrics.md): completed TLS handshakes (denominator of the failure ratio)
    "outrider_tls_handshakes_total",
    # extension (docs/metrics.md): plaintext client connections (permissive → strict migration)
    "outrider_plaintext_connections_total",
    # extension (docs/metrics.md): per-tool MCP latency
    "outrider_mcp_request_duration_seconds_bucket",
    "outrider_mcp_request_duration_seconds_sum",
    "outrider_mcp_request_duration_seconds_count",
    "outrider_request_duration_seconds_bucket",
    "outrider_request_duration_seconds_sum",
    "outrider_request_duration_seconds_count",
    "outrider_proxy_errors_total",
    "outrider_retries_total",
    "outrider_retry_budget_exhausted_total",
    "outrider_backend_endpoints",
    "outrider_backend_active_requests",
    "outrider_circuit_breaker_open",
    "outrider_outlier_ejections_total",
    "outrider_connections_open",
    "outrider_tls_handshake_errors_total",
    "outrider_authz_denied_total",
    "outrider_config_reloads_total",
    "outrider_config_generation",
    "outrider_config_last_reload_success_timestamp_seconds",
    "outrider_tls_cert_expiry_timestamp_seconds",
    "outrider_mcp_sessions",
    "outrider_discovery_updates_total",
    "outrider_build_info",
    "up",
}
PROCESS = re.compile(r"^process_[a-z_]+$")

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless", "atan2", "inf", "nan", "e"}

def metric_names(expr):
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)   # string literals
    s = re.sub(r'\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]', '1', s)                       # Grafana variables
    s = re.sub(r'\{[^}]*\}', '', s)                                               # label matchers
    s = re.sub(r'\[[^\]]*\]', '', s)                                              # ranges, subqueries
    s = re.sub(r'\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', ' ', s)
    s = re.sub(r'\boffset\s+-?\w+', ' ', s)
    names = set()
    for m in re.finditer(r'(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?', s):
        tok, call = m.group(1), m.group(2)
        if call or tok.lower() in KEYWORDS:
            continue
        names.add(tok)
    return names

def allowed(name, extra=()):
    return name in SPEC_METRICS or PROCESS.match(name) or name in extra

errors = []
checked = 0

dash_path, rules_path = sys.argv[1], sys.argv[2]
dash = json.load(open(dash_path))

def walk(node, where):
    global checked
    if isinstance(node, dict):
        title = node.get("title") or node.get("name") or where
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                checked += 1
                for n in metric_names(v):
                    if not allowed(n):
                        errors.append(f"{dash_path}: {title}: unknown metric {n!r} in {v!r}")
            else:
                walk(v, title)
    elif isinstance(node, list):
        for v in node:
            walk(v, where)
walk(dash, "dashboard")

# Template variables: label_values(SELECTOR, label) / query_result(EXPR) / metrics(...)
for var in dash.get("templating", {}).get("list", []):
    if var.get("type") != "query":
        continue
    q = var.get("query")
    q = q.get("query", "") if isinstance(q, dict) else (q or "")
    checked += 1
    m = re.match(r'^\s*label_values\((.*),\s*(\w+)\s*\)\s*$', q) or re.match(r'^\s*query_result\((.*)\)\s*$', q)
    if not m:
        errors.append(f"{dash_path}: variable {var.get('name')}: unsupported query {q!r}")
        continue
    for n in metric_names(m.group(1)):
        if not allowed(n):
            errors.append(f"{dash_path}: variable {var.get('name')}: unknown metric {n!r} in {q!r}")

# Structure the README promises.
if not 36 <= dash.get("schemaVersion", 0) <= 41:
    errors.append(f"{dash_path}: schemaVersion {dash.get('schemaVersion')} not ~39")
names = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
if names.get("datasource", {}).get("type") != "datasource" or names["datasource"].get("query") != "prometheus":
    errors.append(f"{dash_path}: missing datasource variable of type prometheus")
for v in ("service", "backend", "route"):
    if v not in names:
        errors.append(f"{dash_path}: missing template variable {v}")
ids = [p.get("id") for p in dash.get("panels", [])]
if len(ids) != len(set(ids)):
    errors.append(f"{dash_path}: duplicate panel ids")
for p in dash.get("panels", []):
    if p.get("type") != "row" and p.get("datasource", {}).get("uid") != "${datasource}":
        errors.append(f"{dash_path}: panel {p.get('title')!r} does not use the $datasource variable")

# Rules file: same metric names, plus the series it records itself.
try:
    import yaml
except ImportError:
    yaml = None
if yaml is not None:
    rules = yaml.safe_load(open(rules_path))
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    for g in rules["groups"]:
        for r in g["rules"]:
            checked += 1
            for n in metric_names(r["expr"]):
                if not allowed(n, recorded):
                    errors.append(f"{rules_path}: {r.get('alert') or r.get('record')}: unknown metric {n!r}")
else:
    print("  note: PyYAML not installed; rules file metric names not checked here")

if errors:
    print("\n".join("  FAILED: " + e for e in errors))
    sys.exit(1)
print(f"  SUCCESS: {checked} expressions reference only SPEC §8 metrics, up and process_*")
PY

printf '\ncheck-deploy: all checks passed\n'
