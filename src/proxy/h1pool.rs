//! Per-worker HTTP/1.1 upstream connection pool (being built).
