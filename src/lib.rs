//! outrider: an MCP-aware L7 sidecar proxy.
//!
//! Modules follow the traffic: `config` (YAML -> runtime model), `snapshot` (one immutable
//! view per config generation), `routing` and `balance` (pure choices), `proxy` (listeners and
//! the per-direction request paths), `admin` (admin and metrics listeners), `telemetry`
//! (logs and metrics), `app` (wiring and lifecycle), `cli` (the command line).
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod balance;
pub mod certs;
pub mod cli;
pub mod config;
pub mod mcp;
pub mod proxy;
pub mod reload;
pub mod resilience;
pub mod routing;
pub mod snapshot;
pub mod telemetry;
pub mod tls;

pub use app::{App, AppHandle, AppOptions};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("OUTRIDER_GIT_COMMIT");
