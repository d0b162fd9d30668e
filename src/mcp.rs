//! MCP awareness: classification of JSON-RPC traffic (being built).
