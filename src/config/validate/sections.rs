//! Validation of the top-level sections other than listeners and traffic: `identity`/`tls`,
//! `tracing`, `access_log`, `mcp`, and the MCP conditions of routes and rules.

use super::*;

/// `{ methods, tools }` globs of a route or rule; `methods` must look like MCP methods.
pub(super) fn mcp_condition(
    cx: &mut Ctx,
    path: &str,
    c: &schema::McpCondition,
) -> crate::mcp::McpMatch {
    for (key, list) in [("methods", &c.methods), ("tools", &c.tools)] {
        for (i, g) in list.iter().enumerate() {
            if let Err(e) = glob::Pattern::new(g) {
                cx.err(
                    &format!("{path}.{key}[{i}]"),
                    format!("invalid glob `{g}`: {e}"),
                );
            }
        }
    }
    crate::mcp::McpMatch::new(&c.methods, &c.tools).unwrap_or_default()
}

pub(super) fn mcp_section(cx: &mut Ctx, m: Option<&schema::Mcp>) -> usize {
    const DEFAULT: usize = 1 << 20;
    let Some(m) = m else { return DEFAULT };
    match m.max_inspect_body.as_deref().map(units::size) {
        None => DEFAULT,
        Some(Ok(n)) if (1..=64 << 20).contains(&n) => n as usize,
        Some(Ok(_)) => {
            cx.err(
                "mcp.max_inspect_body",
                "max_inspect_body must be between 1 byte and 64MiB",
            );
            DEFAULT
        }
        Some(Err(e)) => {
            cx.err("mcp.max_inspect_body", e);
            DEFAULT
        }
    }
}

pub(super) fn tracing_section(
    cx: &mut Ctx,
    t: Option<&schema::Tracing>,
) -> crate::telemetry::propagation::Settings {
    let mut s = crate::telemetry::propagation::Settings::default();
    let Some(t) = t else { return s };
    if let Some(list) = &t.propagation {
        s.w3c = false;
        s.b3 = false;
        for (i, p) in list.iter().enumerate() {
            match p.as_str() {
                "w3c" => s.w3c = true,
                "b3" => s.b3 = true,
                other => cx.err(
                    &format!("tracing.propagation[{i}]"),
                    format!("unknown propagation `{other}`: expected w3c or b3"),
                ),
            }
        }
    }
    if let Some(r) = t.sample_ratio {
        if !(0.0..=1.0).contains(&r) {
            cx.err(
                "tracing.sample_ratio",
                "sample_ratio must be between 0.0 and 1.0",
            );
        }
        s.sample_ratio = r.clamp(0.0, 1.0);
    }
    s
}

pub(super) fn otlp_endpoint(cx: &mut Ctx, t: Option<&schema::Tracing>) -> Option<http::Uri> {
    let e = &t?.otlp.as_ref()?.endpoint;
    match e.parse::<http::Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => Some(u),
        _ => {
            cx.err(
                "tracing.otlp.endpoint",
                format!(
                    "invalid OTLP endpoint `{e}`: expected http://HOST:PORT/v1/traces (OTLP/HTTP)"
                ),
            );
            None
        }
    }
}

pub(super) fn access_log_section(
    cx: &mut Ctx,
    a: &schema::AccessLog,
) -> Option<crate::telemetry::access_log::Target> {
    use crate::telemetry::access_log::Target;
    match a.format.as_deref() {
        None | Some("json") => {}
        Some(f) => cx.err(
            "access_log.format",
            format!("unknown access_log format `{f}`: expected json"),
        ),
    }
    match a.path.as_deref() {
        None | Some("stdout") | Some("-") => Some(Target::Stdout),
        Some("off") => None,
        Some("") => {
            cx.err(
                "access_log.path",
                "access_log.path must not be empty (use stdout or a file path)",
            );
            None
        }
        Some(p) => Some(Target::File(p.into())),
    }
}

/// `identity` + `tls`: the SPIFFE ID, and the files loaded and checked exactly as at start
/// (readable, key matches cert, cert chains to the CA, URI SAN == identity).
pub(super) fn tls_section(
    cx: &mut Ctx,
    identity: Option<&str>,
    tls: Option<&schema::Tls>,
) -> (Option<String>, Option<model::TlsFiles>) {
    if let Some(id) = identity {
        if let Err(m) = crate::tls::identity::check_spiffe_id(id) {
            cx.err("identity", m);
        }
    }
    let Some(t) = tls else {
        return (identity.map(str::to_owned), None);
    };
    let files = model::TlsFiles {
        ca: t.ca.clone().into(),
        cert: t.cert.clone().into(),
        key: t.key.clone().into(),
    };
    match identity {
        None => cx.err_key(
            "tls",
            "`tls` needs `identity` (this sidecar's SPIFFE ID, the URI SAN of tls.cert)",
        ),
        Some(id) if cx.problems.iter().all(|p| p.path != "identity") => {
            if let Err(e) = crate::tls::Material::load(&files, id) {
                let key = match &e {
                    crate::tls::Error::Read { path, .. }
                    | crate::tls::Error::Invalid { path, .. } => {
                        if *path == files.ca {
                            "tls.ca"
                        } else if *path == files.key {
                            "tls.key"
                        } else {
                            "tls.cert"
                        }
                    }
                    crate::tls::Error::Config(_) => "tls",
                };
                cx.err(key, e.to_string());
            }
        }
        Some(_) => {}
    }
    (identity.map(str::to_owned), Some(files))
}
