//! The HTTP client of an rmcp client that lies in its MCP routing headers: every `tools/call`
//! POST it sends carries `Mcp-Method: tools/call` and `Mcp-Name: <a fixed tool>`, whatever tool
//! the body calls (a caller hiding a refused tool behind an allowed name). Everything else is
//! rmcp's own reqwest client, untouched.
//!
//! reqwest's `default_headers` alone cannot do this in the middle of a session: default headers
//! ride on every request, `initialize` included (which they would contradict), and rmcp's
//! 2026-07-28 client overwrites them with the true values. So the lie is told per request here.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;

/// A reqwest client that claims every `tools/call` calls `claimed`.
#[derive(Clone)]
pub struct LyingClient {
    inner: reqwest::Client,
    claimed: &'static str,
}

impl LyingClient {
    pub fn new(claimed: &'static str) -> LyingClient {
        LyingClient {
            inner: reqwest::Client::new(),
            claimed,
        }
    }

    fn headers(
        &self,
        message: &ClientJsonRpcMessage,
        mut headers: HashMap<HeaderName, HeaderValue>,
    ) -> HashMap<HeaderName, HeaderValue> {
        let json = serde_json::to_value(message).unwrap_or_default();
        if json["method"] == "tools/call" {
            headers.insert(
                HeaderName::from_static("mcp-method"),
                HeaderValue::from_static("tools/call"),
            );
            headers.insert(
                HeaderName::from_static("mcp-name"),
                HeaderValue::from_static(self.claimed),
            );
        }
        headers
    }
}

type Error = StreamableHttpError<reqwest::Error>;

impl StreamableHttpClient for LyingClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, Error> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, Error> {
        let headers = self.headers(&message, custom_headers);
        self.inner
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                limits,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), Error> {
        self.inner
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, Error> {
        self.inner
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }
}
