//! A real MCP server built with the official Rust SDK (rmcp), over Streamable HTTP.
//!
//! ```text
//! cargo run --example writing_analysis -- --listen 127.0.0.1:8080
//! ```
//!
//! Serves `POST/GET/DELETE /mcp` with two tools: `analyze_text { text }` (a word count) and
//! `long_analysis { steps, interval_ms }`, which streams `steps` `notifications/progress` over
//! the call's SSE response, one every `interval_ms`, before answering. Put an outrider inbound
//! sidecar in front of it (`inbound: { app: "127.0.0.1:8080" }`) to try MCP routing,
//! authorization and streaming; `tests/integration/rmcp_e2e.rs` does exactly that.

#[path = "common/writing_analysis_server.rs"]
mod server;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next() {
                Some(addr) => listen = addr,
                None => return Err(usage("--listen needs an address")),
            },
            "-h" | "--help" => {
                println!("usage: writing_analysis [--listen ADDR]   (default 127.0.0.1:8080)");
                return Ok(());
            }
            other => return Err(usage(&format!("unknown argument {other:?}"))),
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "writing-analysis MCP server on http://{}/mcp",
        listener.local_addr()?
    );
    server::serve(listener, server::WritingAnalysis::new(None)).await
}

fn usage(msg: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{msg}\nusage: writing_analysis [--listen ADDR]"),
    )
}
