use http::{HeaderMap, HeaderValue, Method};

use super::*;
use crate::config::model::{HeaderEdits, Route};

fn route(name: &str, host: HostMatch, path: PathMatch) -> Route {
    Route {
        name: name.into(),
        host,
        path,
        method: None,
        headers: Vec::new(),
        to: vec![(0, 1)],
        total_weight: 1,
        timeout: std::time::Duration::from_secs(1),
        idle_timeout: std::time::Duration::from_secs(1),
        request_headers: HeaderEdits::default(),
        response_headers: HeaderEdits::default(),
        retry: None,
        mcp: None,
    }
}

fn find(routes: &[Route], host: &str, path: &str) -> Option<usize> {
    let h = HeaderMap::new();
    let req = Request {
        host,
        path,
        method: &Method::GET,
        headers: &h,
        mcp: None,
    };
    let got = Table::new(routes).find(routes, &req);
    // The index must agree with a plain linear scan, the definition of "first match wins".
    let linear = routes
        .iter()
        .position(|r| check(r, &req) == Verdict::Matched);
    assert_eq!(got, linear, "host {host} path {path}");
    got
}

#[test]
fn first_match_wins_across_host_buckets() {
    let routes = vec![
        route(
            "any-admin",
            HostMatch::Any,
            PathMatch::Prefix("/admin".into()),
        ),
        route(
            "suffix",
            HostMatch::Suffix("edu.local".into()),
            PathMatch::Any,
        ),
        route(
            "exact",
            HostMatch::Exact("a.edu.local".into()),
            PathMatch::Any,
        ),
        route(
            "exact-port",
            HostMatch::Exact("b.edu.local:8080".into()),
            PathMatch::Any,
        ),
        route("fallback", HostMatch::Any, PathMatch::Any),
    ];
    assert_eq!(find(&routes, "x.y.z", "/admin/x"), Some(0));
    assert_eq!(find(&routes, "a.edu.local", "/mcp"), Some(1));
    assert_eq!(find(&routes, "A.EDU.local:443", "/mcp"), Some(1));
    assert_eq!(find(&routes, "edu.local", "/mcp"), Some(4));
    assert_eq!(find(&routes, "b.edu.local:8080", "/"), Some(1));
    assert_eq!(find(&routes, "other", "/"), Some(4));
}

#[test]
fn exact_host_ignores_port_unless_route_names_one() {
    let routes = vec![
        route("port", HostMatch::Exact("svc:8080".into()), PathMatch::Any),
        route(
            "bare",
            HostMatch::Exact("svc".into()),
            PathMatch::Exact("/x".into()),
        ),
    ];
    assert_eq!(find(&routes, "svc:8080", "/y"), Some(0));
    assert_eq!(find(&routes, "svc:9090", "/x"), Some(1));
    assert_eq!(find(&routes, "svc", "/x"), Some(1));
    assert_eq!(find(&routes, "svc", "/x/y"), None);
    assert_eq!(find(&routes, "[::1]:80", "/x"), None);
}

#[test]
fn method_and_headers_must_all_match() {
    let mut r = route("r", HostMatch::Any, PathMatch::Any);
    r.method = Some(Method::POST);
    r.headers = vec![(
        http::HeaderName::from_static("x-v"),
        HeaderValue::from_static("2"),
    )];
    let mut h = HeaderMap::new();
    let req = |m: &'static Method, h: &HeaderMap| {
        check(
            &r,
            &Request {
                host: "h",
                path: "/",
                method: m,
                headers: h,
                mcp: None,
            },
        )
    };
    assert_eq!(req(&Method::GET, &h), Verdict::Method);
    assert_eq!(req(&Method::POST, &h), Verdict::Header("x-v".into()));
    h.append("x-v", HeaderValue::from_static("1"));
    h.append("x-v", HeaderValue::from_static("2"));
    assert_eq!(req(&Method::POST, &h), Verdict::Matched);
}

#[test]
fn strip_port_handles_ipv6() {
    assert_eq!(strip_port("svc:80"), "svc");
    assert_eq!(strip_port("svc"), "svc");
    assert_eq!(strip_port("[::1]:80"), "[::1]");
    assert_eq!(strip_port("[::1]"), "[::1]");
}

#[test]
fn many_routes_stay_indexed() {
    let routes: Vec<Route> = (0..10_000)
        .map(|i| {
            route(
                &format!("r{i}"),
                HostMatch::Exact(format!("svc-{i}")),
                PathMatch::Any,
            )
        })
        .collect();
    assert_eq!(find(&routes, "svc-9999", "/"), Some(9999));
    assert_eq!(find(&routes, "svc-10000", "/"), None);
}

#[test]
fn mcp_conditions_route_tools_of_one_host_to_different_routes() {
    let mut profile = route("profile", HostMatch::Exact("svc".into()), PathMatch::Any);
    profile.mcp = Some(crate::mcp::McpMatch::new(&["tools/call"], &["profile_*"]).unwrap());
    let rest = route("rest", HostMatch::Exact("svc".into()), PathMatch::Any);
    let routes = vec![profile, rest];
    let h = HeaderMap::new();
    let ct = HeaderValue::from_static("application/json");
    let call = |tool: &str| {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#
        );
        crate::mcp::classify(Some(&ct), body.as_bytes())
            .unwrap()
            .unwrap()
    };
    let find = |c: Option<&crate::mcp::Classification>| {
        let req = Request {
            host: "svc",
            path: "/mcp",
            method: &Method::POST,
            headers: &h,
            mcp: c,
        };
        Table::new(&routes).find(&routes, &req)
    };
    assert_eq!(find(Some(&call("profile_get"))), Some(0));
    assert_eq!(find(Some(&call("analyze_text"))), Some(1));
    assert_eq!(
        find(None),
        Some(1),
        "an unclassified request never matches an MCP condition"
    );
}
