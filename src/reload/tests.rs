use super::*;
use crate::config::load_str_with_env;

fn cfg(text: &str) -> Config {
    (*load_str_with_env(text, "t.yaml", &|_| None).unwrap().config).clone()
}

const BASE: &str = "version: 1
outbound:
  listen: 127.0.0.1:0
  routes:
    - { name: a, match: { host: a }, to: [{ backend: x }] }
    - { name: b, match: { host: b }, to: [{ backend: y }] }
backends:
  - { name: x, discovery: { static: [\"127.0.0.1:1\"] } }
  - { name: y, discovery: { static: [\"127.0.0.1:2\"] } }
";

#[test]
fn diff_names_what_changed() {
    let old = cfg(BASE);
    let new = cfg(&BASE
        .replace(
            "{ name: b, match: { host: b }",
            "{ name: c, match: { host: c }",
        )
        .replace("127.0.0.1:1", "127.0.0.1:3")
        .replace("to: [{ backend: x }]", "to: [{ backend: x }], timeout: 1s"));
    let c = diff(Some(&old), &new);
    assert_eq!(c.routes_added, ["c"]);
    assert_eq!(c.routes_removed, ["b"]);
    assert_eq!(c.routes_changed, ["a"]);
    assert_eq!(c.backends_changed, ["x"]);
    assert!(c.backends_added.is_empty() && c.backends_removed.is_empty());
}

#[test]
fn inserting_a_backend_does_not_mark_routes_changed() {
    let old = cfg(BASE);
    let new = cfg(&BASE.replace(
        "backends:\n",
        "backends:\n  - { name: w, discovery: { static: [\"127.0.0.1:9\"] } }\n",
    ));
    let c = diff(Some(&old), &new);
    assert_eq!(c.backends_added, ["w"]);
    assert!(c.routes_changed.is_empty(), "{c:?}");
}

#[test]
fn listener_and_limit_changes_need_a_restart() {
    let old = cfg(BASE);
    let moved = cfg(&BASE.replace("listen: 127.0.0.1:0", "listen: 127.0.0.1:7"));
    let err = restart_only_changes(&old, &moved).unwrap_err();
    assert!(
        err.contains("outbound.listen 127.0.0.1:0 -> 127.0.0.1:7"),
        "{err}"
    );
    let limited = cfg(&format!("{BASE}limits: {{ max_header_bytes: 16KiB }}\n"));
    assert!(restart_only_changes(&old, &limited)
        .unwrap_err()
        .contains("limits"));
    let dropped = cfg("version: 1\n");
    assert!(restart_only_changes(&old, &dropped)
        .unwrap_err()
        .contains("outbound.listen 127.0.0.1:0 -> none"));
    assert!(restart_only_changes(&old, &cfg(&BASE.replace("127.0.0.1:2", "127.0.0.1:5"))).is_ok());
}
