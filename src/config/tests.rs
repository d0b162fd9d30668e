use super::*;

fn env(name: &str) -> Option<String> {
    (name == "APP_PORT").then(|| "8080".to_owned())
}

fn load(text: &str) -> Result<Loaded, Errors> {
    load_str_with_env(text, "t.yaml", &env)
}

fn errors(text: &str) -> Vec<String> {
    load(text)
        .unwrap_err()
        .to_string()
        .lines()
        .map(str::to_owned)
        .collect()
}

const GOOD: &str = r#"
version: 1
service: demo
admin: { listen: 127.0.0.1:0 }
metrics: { listen: 127.0.0.1:0 }
drain_timeout: 2s
limits: { max_header_bytes: 16KiB, header_read_timeout: 500ms, max_concurrent_streams: 8 }
inbound: { listen: 127.0.0.1:0, app: "127.0.0.1:${APP_PORT}", mode: plaintext, max_concurrent_requests: 4 }
outbound:
  listen: 127.0.0.1:0
  routes:
    - name: split
      match: { host: "*.Example.com", path_prefix: /api, method: POST, headers: { X-V: "2" } }
      to: [{ backend: a, weight: 3 }, { backend: b }]
      timeout: 250ms
      request_headers: { set: { x-caller: demo }, remove: [x-debug] }
backends:
  - { name: a, discovery: { static: ["127.0.0.1:1", "localhost:2"] }, protocol: http2, connect_timeout: 100ms }
  - { name: b, discovery: { static: ["[::1]:3"] } }
"#;

#[test]
fn valid_config_becomes_runtime_model() {
    let l = load(GOOD).unwrap();
    let c = &l.config;
    assert_eq!(c.inbound.as_ref().unwrap().app.port(), 8080);
    assert_eq!(c.limits.max_header_bytes, 16384);
    let r = &c.outbound.as_ref().unwrap().routes[0];
    assert_eq!(r.host, model::HostMatch::Suffix("example.com".into()));
    assert_eq!(r.to, vec![(0, 3), (1, 1)]);
    assert_eq!(r.total_weight, 4);
    assert_eq!(r.timeout, std::time::Duration::from_millis(250));
    assert_eq!(r.headers[0].0.as_str(), "x-v");
    assert_eq!(c.backends[0].endpoints[1].to_string(), "127.0.0.1:2");
    assert_eq!(c.backends[0].protocol, model::Protocol::Http2);
    assert_eq!(
        l.effective.to_json()["outbound"]["routes"][0]["to"][1]["weight"],
        1
    );
    assert_eq!(l.sha256.len(), 64);
}

#[test]
fn the_embedded_default_is_valid() {
    let l = load_str_with_env(EMBEDDED_DEFAULT, "<embedded>", &|_| None).unwrap();
    assert_eq!(
        l.config.inbound.as_ref().unwrap().app.to_string(),
        "127.0.0.1:8080"
    );
    assert_eq!(
        l.config.outbound.as_ref().unwrap().listen.to_string(),
        "127.0.0.1:15001"
    );
    assert_eq!(l.config.admin.to_string(), "127.0.0.1:15000");
    assert_eq!(l.config.metrics.to_string(), "0.0.0.0:15090");
}

#[test]
fn reports_every_problem_with_its_position() {
    let text = "version: 1
outbound:
  listen: 127.0.0.1:0
  routes:
    - name: a
      to: [{ backend: missing }]
      timeout: soon
    - name: a
      to: [{ backend: x, weight: 0 }]
backends:
  - name: x
    discovery: { static: [\"127.0.0.1:1\"] }
  - name: x
    discovery: { static: [\"bad\"] }
    protocol: h3
";
    let errs = errors(text);
    let expect = [
        "t.yaml:6:23: unknown backend `missing`",
        "t.yaml:7:16: invalid duration `soon`",
        "t.yaml:8:13: duplicate route name `a`",
        "t.yaml:9:11: total weight of `to` must be greater than 0",
        "t.yaml:13:11: duplicate backend name `x`",
        "t.yaml:14:27: invalid address `bad`",
        "t.yaml:15:15: invalid protocol `h3`",
    ];
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    for (got, want) in errs.iter().zip(expect) {
        assert!(got.starts_with(want), "got {got:?}, want prefix {want:?}");
    }
}

#[test]
fn unknown_keys_are_errors_with_the_key_position() {
    let errs = errors("version: 1\nadmin: { listen: 127.0.0.1:0, lisen: x }\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("t.yaml:2:31: admin.lisen: unknown field `lisen`"),
        "{errs:?}"
    );
    let errs = errors("version: 1\nbackends:\n  - name: b\n    discovery: { static: [\"127.0.0.1:1\"] }\n    balanse: x\n");
    assert!(
        errs[0].starts_with("t.yaml:5:5: unknown field `balanse`"),
        "{errs:?}"
    );
}

#[test]
fn unbuilt_sections_are_refused_not_ignored() {
    for (section, text) in [
        ("gateway", "gateway: { listen: 0.0.0.0:1 }"),
        ("registration", "registration: { ttl: 10s }"),
    ] {
        let errs = errors(&format!("version: 1\n{text}\n"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("t.yaml:2:"), "{errs:?}");
        assert!(
            errs[0].ends_with(&format!(": not supported yet: {section}")),
            "{errs:?}"
        );
    }
    let errs = errors(
        "version: 1\nbackends:\n  - name: b\n    discovery: { dns: { name: x, port: 1 } }\n    session_affinity: sticky\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("not supported yet: backends[0].discovery.dns")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("invalid session_affinity `sticky`")),
        "{errs:?}"
    );
    let errs =
        errors("version: 1\ninbound: { listen: 127.0.0.1:0, app: 127.0.0.1:1, mode: strict }\n");
    assert!(
        errs[0].contains("inbound.mode `strict` needs the `tls` section"),
        "{errs:?}"
    );
}

#[test]
fn syntax_errors_and_missing_variables_have_positions() {
    let errs = errors("version: 1\nadmin: { listen: [\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("t.yaml:3:1: YAML syntax"), "{errs:?}");
    let errs = errors("version: 1\nadmin: { listen: \"${NOPE}\" }\n");
    assert!(
        errs[0].starts_with("t.yaml:2:19: environment variable `NOPE` is not set"),
        "{errs:?}"
    );
    assert!(errors("")[0].contains("config is empty"));
    assert!(errors("version: x\n")[0].starts_with("t.yaml:1:10: version: invalid type"));
}

#[test]
fn header_and_path_rules() {
    let base = "version: 1\nbackends: [{ name: b, discovery: { static: [\"127.0.0.1:1\"] } }]\noutbound:\n  listen: 127.0.0.1:0\n  routes:\n";
    let errs = errors(&format!(
        "{base}    - name: r\n      match: {{ path: api, method: post }}\n      to: [{{ backend: b }}]\n      request_headers: {{ set: {{ connection: close }} }}\n"
    ));
    assert!(
        errs.iter().any(|e| e.contains("paths must start with `/`")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("invalid method `post`")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("`connection` is a hop-by-hop header")),
        "{errs:?}"
    );
}

#[test]
fn listener_clash_is_an_error() {
    let errs = errors(
        "version: 1\nadmin: { listen: 127.0.0.1:9000 }\nmetrics: { listen: 127.0.0.1:9000 }\n",
    );
    assert!(errs[0].contains("already used by admin.listen"), "{errs:?}");
}

fn pki(dir: &std::path::Path, names: &[&str]) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    crate::certs::write_dev_pki(dir, "classroom.local", &names).unwrap();
}

fn tls_yaml(dir: &std::path::Path, identity: &str, cert: &str) -> String {
    let d = dir.display();
    format!(
        "version: 1\nidentity: {identity}\ntls: {{ ca: {d}/ca.pem, cert: {d}/{cert}.pem, key: {d}/{cert}.key }}\n\
         inbound: {{ listen: 127.0.0.1:0, app: 127.0.0.1:1, authorize: [{{ name: gw, peers: [\"spiffe://classroom.local/sa/*\"] }}] }}\n\
         backends: [{{ name: b, discovery: {{ static: [\"127.0.0.1:2\"] }}, tls: {{ identity: \"spiffe://classroom.local/sa/b\" }} }}]\n"
    )
}

#[test]
fn tls_section_is_loaded_and_checked() {
    let dir = std::env::temp_dir().join(format!("outrider-cfg-tls-{}", std::process::id()));
    pki(&dir, &["a", "b"]);
    let ok = load(&tls_yaml(&dir, "spiffe://classroom.local/sa/a", "a")).unwrap();
    let ib = ok.config.inbound.as_ref().unwrap();
    assert_eq!(
        ib.mode,
        model::Mode::Strict,
        "strict is the default with tls"
    );
    assert!(ib.authorize.as_ref().unwrap()[0].allows(Some("spiffe://classroom.local/sa/x")));
    assert!(!ib.authorize.as_ref().unwrap()[0].allows(None));
    assert_eq!(
        ok.config.backends[0].tls.as_deref(),
        Some("spiffe://classroom.local/sa/b")
    );

    let errs = errors(&tls_yaml(&dir, "spiffe://classroom.local/sa/b", "a"));
    assert!(
        errs[0].contains("certificate identity spiffe://classroom.local/sa/a differs"),
        "{errs:?}"
    );
    assert!(
        errs[0].starts_with("t.yaml:3:"),
        "points at tls.cert: {errs:?}"
    );
    let errs = errors(&tls_yaml(&dir, "spiffe://classroom.local/sa/a", "missing"));
    assert!(
        errs[0].contains("cannot read") && errs[0].contains("missing.pem"),
        "{errs:?}"
    );
    let errs = errors(&tls_yaml(&dir, "not-a-spiffe-id", "a"));
    assert!(errs[0].contains("is not a SPIFFE ID"), "{errs:?}");
    let errs =
        errors(&tls_yaml(&dir, "spiffe://classroom.local/sa/a", "a").replace("/a.key", "/b.key"));
    assert!(
        errs.iter().any(|e| e.contains("does not match")),
        "{errs:?}"
    );
    let errs = errors("version: 1\nbackends: [{ name: b, discovery: { static: [\"127.0.0.1:2\"] }, tls: { identity: \"spiffe://x/y\" } }]\n");
    assert!(
        errs[0].contains("needs the top-level `tls` section"),
        "{errs:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resilience_sections_are_validated() {
    let base = "version: 1\noutbound:\n  listen: 127.0.0.1:0\n  routes:\n    - name: r\n      to: [{ backend: b }]\n";
    let ok = load(&format!(
        "{base}      retry: {{ attempts: 3, per_try_timeout: 100ms, on: [connect-failure, gateway-error, 429], backoff: {{ base: 5ms, max: 50ms }}, budget: {{ ratio: 0.5, min_per_second: 3 }}, max_body: 1KiB }}\n\
         backends:\n  - name: b\n    discovery: {{ static: [\"127.0.0.1:1\", \"127.0.0.1:2\"] }}\n    balance: least-request\n\
         \x20   circuit_breaker: {{ max_concurrent_requests: 7, max_pending: 0, consecutive_failures: 2, ejection_time: 1s, max_ejected_percent: 100 }}\n\
         \x20   health_check: {{ path: /ready, interval: 1s, timeout: 100ms }}\n"
    ))
    .unwrap();
    let r = ok.config.outbound.as_ref().unwrap().routes[0]
        .retry
        .clone()
        .unwrap();
    assert_eq!(r.settings.attempts, 3);
    assert!(
        r.settings.on.connect_failure && r.settings.on.status(503) && r.settings.on.status(429)
    );
    assert!(!r.settings.on.status(500));
    assert_eq!(r.settings.max_body, 1024);
    let b = &ok.config.backends[0].resilience;
    assert_eq!(b.balance, crate::resilience::BalanceKind::LeastRequest);
    assert_eq!(b.limits.max_concurrent_requests, 7);
    assert_eq!(b.outlier.max_ejected_percent, 100);
    assert_eq!(b.health.as_ref().unwrap().path, "/ready");

    let errs = errors(&format!(
        "{base}      retry: {{ attempts: 0, on: [teapot, 700], budget: {{ ratio: -1 }}, idempotent_tools: [x] }}\n\
         backends:\n  - name: b\n    discovery: {{ static: [\"127.0.0.1:1\"] }}\n    balance: random\n    circuit_breaker: {{ max_ejected_percent: 101, max_concurrent_requests: 0 }}\n"
    ));
    for want in [
        "attempts must be at least 1",
        "unknown retry condition `teapot`",
        "unknown retry condition `700`",
        "budget.ratio must be between",
        "invalid balance `random`",
        "max_ejected_percent must be 0..=100",
        "max_concurrent_requests must be at least 1",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
}

#[test]
fn limits_default_and_bounds() {
    let l = load(GOOD).unwrap();
    assert_eq!(l.config.limits.max_connections, 10_000, "default");
    let l = load("version: 1\nlimits: { max_connections: 64 }\n").unwrap();
    assert_eq!(l.config.limits.max_connections, 64);
    assert_eq!(l.config.limits.max_concurrent_streams, 256, "default");
    let errs = errors(
        "version: 1\nlimits: { max_connections: 0, max_concurrent_streams: 0, header_read_timeout: 0s }\n",
    );
    for want in [
        "max_connections must be at least 1",
        "max_concurrent_streams must be at least 1",
        "header_read_timeout must be greater than 0",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "missing {want:?} in {errs:#?}"
        );
    }
}

#[test]
fn idle_timeout_defaults_to_an_hour_and_zero_disables_it() {
    let l = load(GOOD).unwrap();
    assert_eq!(
        l.config.limits.idle_timeout,
        std::time::Duration::from_secs(3600)
    );
    let l = load("version: 1\nlimits: { idle_timeout: 0s }\n").unwrap();
    assert_eq!(l.config.limits.idle_timeout, std::time::Duration::ZERO);
    let l = load("version: 1\nlimits: { idle_timeout: 90s }\n").unwrap();
    assert_eq!(
        l.config.limits.idle_timeout,
        std::time::Duration::from_secs(90)
    );
    let errs = errors("version: 1\nlimits: { idle_timeout: soon }\n");
    assert!(
        errs.iter()
            .any(|e| e.contains("t.yaml:2:25: invalid duration `soon`")),
        "{errs:#?}"
    );
}

#[test]
fn otlp_endpoint_must_be_http() {
    let ok =
        load("version: 1\ntracing: { otlp: { endpoint: \"http://127.0.0.1:4318/v1/traces\" } }\n")
            .unwrap();
    assert_eq!(
        ok.config.otlp_endpoint.as_ref().unwrap().path(),
        "/v1/traces"
    );
    let errs = errors("version: 1\ntracing: { otlp: { endpoint: \"grpc://collector:4317\" } }\n");
    assert!(errs[0].contains("invalid OTLP endpoint"), "{errs:?}");
}

#[test]
fn body_read_timeout_defaults_to_30s_and_must_be_positive() {
    let l = load(GOOD).unwrap();
    assert_eq!(
        l.config.limits.body_read_timeout,
        std::time::Duration::from_secs(30)
    );
    let l = load("version: 1\nlimits: { body_read_timeout: 2m }\n").unwrap();
    assert_eq!(
        l.config.limits.body_read_timeout,
        std::time::Duration::from_secs(120)
    );
    let errs = errors("version: 1\nlimits: { body_read_timeout: 0s }\n");
    assert!(
        errs.iter()
            .any(|e| e.contains("body_read_timeout must be greater than 0")),
        "{errs:#?}"
    );
}

#[test]
fn h2_keepalive_is_on_by_default_and_interval_zero_turns_it_off() {
    let l = load(GOOD).unwrap();
    assert_eq!(
        l.config.backends[0].h2_keepalive,
        Some(model::H2Keepalive {
            interval: std::time::Duration::from_secs(10),
            timeout: std::time::Duration::from_secs(5),
        })
    );
    let b = |k: &str| {
        format!(
            "version: 1\nbackends: [{{ name: b, discovery: {{ static: [\"127.0.0.1:1\"] }}, h2_keepalive: {k} }}]\n"
        )
    };
    let l = load(&b("{ interval: 0s }")).unwrap();
    assert_eq!(l.config.backends[0].h2_keepalive, None);
    let l = load(&b("{ interval: 1m, timeout: 2s }")).unwrap();
    assert_eq!(
        l.config.backends[0].h2_keepalive,
        Some(model::H2Keepalive {
            interval: std::time::Duration::from_secs(60),
            timeout: std::time::Duration::from_secs(2),
        })
    );
    let errs = errors(&b("{ timeout: 0s }"));
    assert!(
        errs.iter()
            .any(|e| e.contains("h2_keepalive.timeout must be greater than 0")),
        "{errs:#?}"
    );
    let errs = errors(&b("{ every: 1s }"));
    assert!(errs.iter().any(|e| e.contains("every")), "{errs:#?}");
}
