//! OTLP/HTTP span export (being built).
