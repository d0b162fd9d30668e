//! outrider integration tests: one test binary (`cargo test --test integration`).
//!
//! Every test boots the real proxy in-process on 127.0.0.1:0 next to fake upstreams from
//! [`support`], and asserts through real HTTP and `/metrics` scrapes. No fixed ports, no
//! sleeps to wait for state, every network call bounded.

mod support;

mod admin;
mod cli;
mod config_errors;
mod drain;
mod failures;
mod headers;
mod hostile;
mod hostile_h2;
mod idle;
mod inbound;
mod keepalive;
mod mcp;
mod mtls;
mod observability;
mod protocols;
mod proxying;
mod reload;
mod resilience;
mod resilience_more;
mod rmcp_e2e;
mod rmcp_more;
mod sessions;
mod streaming;
mod support_selftest;
