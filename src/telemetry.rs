//! Logging setup (tracing-subscriber) and the metrics module.
//!
//! Owns: `OUTRIDER_LOG` (EnvFilter syntax, default `info`) and `--log-format pretty|json`.

pub mod access_log;
pub mod metrics;
pub mod otlp;
pub mod propagation;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Installs the global subscriber (logs to stderr). Default format: pretty on a terminal, json otherwise.
pub fn init(format: Option<LogFormat>) {
    let filter = EnvFilter::try_from_env("OUTRIDER_LOG").unwrap_or_else(|e| {
        if std::env::var_os("OUTRIDER_LOG").is_some() {
            eprintln!("outrider: invalid OUTRIDER_LOG ({e}); using `info`");
        }
        EnvFilter::new("info")
    });
    let tty = std::io::stderr().is_terminal();
    let format = format.unwrap_or(if tty {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.with_ansi(tty).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}
