//! The command line of SPEC §2: `run`, `check`, `route`, `--version`.
//!
//! Owns: argument parsing (clap), exit codes (0 ok, 1 invalid config, 2 cannot bind,
//! 3 `route` found no match), signal handling for `run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::{error, info, warn};

use crate::config::{self, Loaded};
use crate::routing::{self, Verdict};
use crate::telemetry::{self, LogFormat};
use crate::{App, AppOptions};

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("OUTRIDER_GIT_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(name = "outrider", version = LONG_VERSION, about = "MCP-aware L7 sidecar proxy")]
pub struct Cli {
    /// Log format (default: pretty on a terminal, json otherwise). Level: OUTRIDER_LOG.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the proxy (the embedded default config when no file is given).
    Run {
        #[arg(short, long, env = "OUTRIDER_CONFIG")]
        config: Option<PathBuf>,
        /// Data-path worker threads (default: available cores).
        #[arg(long, env = "OUTRIDER_WORKERS")]
        workers: Option<usize>,
    },
    /// Validate a config file; print every problem as FILE:LINE:COL: message.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Development PKI: a CA plus a key/cert per NAME with URI SAN spiffe://TD/sa/NAME.
    /// Development only: use cert-manager or SPIRE in production (docs/tls.md).
    Certs {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        trust_domain: String,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Explain which route and backend a request would take, and why.
    Route {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        host: String,
        #[arg(long, default_value = "/")]
        path: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// A request header as NAME=VALUE (repeatable).
        #[arg(long = "header", value_name = "NAME=VALUE")]
        headers: Vec<String>,
        #[arg(long)]
        mcp_method: Option<String>,
        #[arg(long)]
        mcp_tool: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, workers } => {
            telemetry::init(cli.log_format);
            run(config.as_deref(), workers)
        }
        Command::Check { config } => match config::load_file(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(1)
            }
        },
        Command::Certs {
            out,
            trust_domain,
            names,
        } => {
            if let Err(m) =
                crate::tls::identity::check_spiffe_id(&format!("spiffe://{trust_domain}/sa/x"))
            {
                eprintln!("invalid --trust-domain: {m}");
                return ExitCode::from(1);
            }
            match crate::certs::write_dev_pki(&out, &trust_domain, &names) {
                Ok(files) => {
                    for f in files {
                        println!("{}", f.display());
                    }
                    println!("development PKI only: use cert-manager or SPIRE in production (docs/tls.md)");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("outrider certs: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Route {
            config,
            host,
            path,
            method,
            headers,
            mcp_method,
            mcp_tool,
        } => match config::load_file(&config) {
            Ok(loaded) => explain(
                &loaded,
                &host,
                &path,
                &method,
                &headers,
                mcp_method.as_deref(),
                mcp_tool.as_deref(),
            ),
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(1)
            }
        },
    }
}

fn run(path: Option<&Path>, workers: Option<usize>) -> ExitCode {
    let loaded = match path {
        Some(p) => config::load_file(p),
        None => {
            warn!("no config file given (-c or OUTRIDER_CONFIG): running the embedded default");
            config::load_str(config::EMBEDDED_DEFAULT, "<embedded>")
        }
    };
    let loaded = match loaded {
        Ok(l) => l,
        Err(errors) => {
            for e in errors.iter() {
                error!(source = %errors.source, line = e.line, col = e.col, "invalid config: {}", e.message);
            }
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    if loaded.config.tls.is_none() {
        warn!("no `tls` section: mesh traffic is PLAINTEXT and unauthenticated; do not use this in production");
    }
    let mut opts = AppOptions::default();
    if let Some(w) = workers {
        opts.workers = w.max(1);
    }
    let handle = match App::start(loaded, opts) {
        Ok(h) => h,
        Err(e) => {
            error!(error = %e, "cannot start");
            eprintln!("outrider: {e}");
            // Files that became invalid after validation are a config problem (1), not a bind one.
            let code = if matches!(e, crate::app::Error::Tls(_)) {
                1
            } else {
                2
            };
            return ExitCode::from(code);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime builds");
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler installs");
        let mut usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler installs");
        let mut done = handle.done();
        let mut signals = 0;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = usr1.recv() => {
                    info!("SIGUSR1: reopening the access log");
                    handle.reopen_logs();
                    continue;
                }
                _ = hup.recv() => {
                    info!("SIGHUP: reloading the config");
                    // This runtime only waits for signals: blocking it for a reload is fine.
                    let _ = handle.reload();
                    continue;
                }
                _ = done.wait_for(|d| *d) => break,
            }
            signals += 1;
            if signals == 1 {
                info!("signal received: draining (send it again to stop at once)");
                handle.drain();
            } else {
                warn!("second signal: stopping now");
                handle.stop();
            }
        }
        info!("stopped");
    });
    ExitCode::SUCCESS
}

fn explain(
    loaded: &Loaded,
    host: &str,
    path: &str,
    method: &str,
    headers: &[String],
    mcp_method: Option<&str>,
    mcp_tool: Option<&str>,
) -> ExitCode {
    let cfg = &loaded.config;
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        eprintln!("invalid --method `{method}`");
        return ExitCode::from(1);
    };
    let mut map = http::HeaderMap::new();
    for h in headers {
        let parsed = h.split_once('=').and_then(|(k, v)| {
            Some((
                http::HeaderName::from_bytes(k.trim().as_bytes()).ok()?,
                http::HeaderValue::from_str(v.trim()).ok()?,
            ))
        });
        match parsed {
            Some((k, v)) => {
                map.append(k, v);
            }
            None => {
                eprintln!("invalid --header `{h}`: expected NAME=VALUE");
                return ExitCode::from(1);
            }
        }
    }
    let routes = cfg.outbound.as_ref().map_or(&[][..], |o| &o.routes[..]);
    let mcp = match (mcp_method, mcp_tool) {
        (None, _) => None,
        (Some(m), tool) => {
            // Explain with the 2026-07-28 routing headers, as a header-only classification.
            let mut h = http::HeaderMap::new();
            let ok = http::HeaderValue::from_str(m)
                .map(|v| h.insert("mcp-method", v))
                .is_ok()
                && tool.is_none_or(|t| {
                    http::HeaderValue::from_str(t)
                        .map(|v| h.insert("mcp-name", v))
                        .is_ok()
                });
            if !ok {
                eprintln!("invalid --mcp-method/--mcp-tool value");
                return ExitCode::from(1);
            }
            match crate::mcp::from_headers(&h) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("invalid --mcp-method/--mcp-tool: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    };
    let req = routing::Request {
        mcp: mcp.as_ref(),
        host,
        path,
        method: &method,
        headers: &map,
    };
    println!("request: {method} {host}{path}");
    let mut matched = None;
    for (i, r) in routes.iter().enumerate() {
        let why = match routing::check(r, &req) {
            Verdict::Matched => {
                matched = Some(i);
                let method = r
                    .method
                    .as_ref()
                    .map_or("any method".to_owned(), |m| format!("method {m}"));
                let hdrs: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect();
                println!(
                    "  route #{i} `{}`: MATCH ({}, {}, {method}{}{})",
                    r.name,
                    r.host,
                    r.path,
                    if hdrs.is_empty() { "" } else { ", headers " },
                    hdrs.join(" ")
                );
                break;
            }
            Verdict::Host => format!("{} does not match", r.host),
            Verdict::Path => format!("{} does not match", r.path),
            Verdict::Method => format!(
                "method is not {}",
                r.method.as_ref().map_or("", |m| m.as_str())
            ),
            Verdict::Header(h) => format!("header `{h}` missing or different"),
            Verdict::Mcp => "MCP method/tool conditions do not match".to_owned(),
        };
        println!("  route #{i} `{}`: skipped, {why}", r.name);
    }
    let table = routing::Table::new(routes);
    debug_assert_eq!(
        table.find(routes, &req),
        matched,
        "index and linear scan agree"
    );
    let Some(i) = matched else {
        println!("result: no route matches -> 404 no-route");
        return ExitCode::from(3);
    };
    let r = &routes[i];
    println!(
        "result: route `{}` (timeout {:?}, idle_timeout {:?})",
        r.name, r.timeout, r.idle_timeout
    );
    for (b, w) in &r.to {
        let be = &cfg.backends[*b];
        let eps: Vec<String> = be.endpoints.iter().map(ToString::to_string).collect();
        println!(
            "  -> backend `{}` weight {w}/{} ({:.1}%), protocol {}, endpoints [{}]",
            be.name,
            r.total_weight,
            f64::from(*w) * 100.0 / f64::from(r.total_weight),
            be.protocol,
            eps.join(", ")
        );
    }
    ExitCode::SUCCESS
}
