//! What a POST body says, in MCP terms: per message the kind, id, method and named target.
//!
//! Owns: [`classify`] (content type + body bytes -> [`Classification`]), the message model
//! ([`Message`], [`Kind`], [`RawId`]) and the metric label helpers. Does not own: header
//! agreement and header-only classification (`headers`), policy (`policy`), error bodies
//! (`errors`), or reading the body (the caller buffers at most `mcp.max_inspect_body`).
//!
//! Decisions (see docs/mcp.md):
//! - Classification borrows the body and never mutates it: the caller forwards the very buffer
//!   it classified, so the upstream always receives the client's bytes.
//! - A non-JSON content type, a body that is not valid JSON, and valid JSON that is not
//!   JSON-RPC 2.0 (no `"jsonrpc":"2.0"`, a non-string `method`, an object/array/bool `id`, an
//!   empty batch, or a batch with any such element) all give `Ok(None)`: pass untouched. An
//!   unclassified request never satisfies an `mcp` condition (`McpMatch::matches_opt`), so this
//!   is never a way around a policy.
//! - The only error is a key outrider reads appearing twice in one object
//!   ([`ClassifyError::DuplicateKey`]): parsers disagree on which copy wins, so the body could
//!   say one thing to the policy and another to the server. Answer it with 400.

use http::HeaderValue;

use super::jsonrpc::{self, Fields, Id, Parsed, Str};
use super::method::{Method, NameField};

#[cfg(test)]
pub(crate) mod tests;

/// Metric label of a batch (`mcp_method`); batches mix methods.
pub const BATCH_LABEL: &str = "_batch";
/// Metric label of a body of JSON-RPC responses (a client answering a server's request).
pub const RESPONSE_LABEL: &str = "_response";

/// Why a JSON-RPC body is refused before any policy runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("duplicate key `{0}` in a JSON-RPC message")]
    DuplicateKey(&'static str),
}

/// A JSON-RPC id exactly as the client wrote it (valid JSON: a number, string or `null`), for
/// echoing in error bodies. Only the classifier creates one, so it is always valid JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawId(Box<str>);

impl RawId {
    /// The `null` id (JSON-RPC's id for errors about a request whose id is unknown).
    pub fn null() -> RawId {
        RawId("null".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a message is, by the JSON-RPC rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id` (the id may be `null`).
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `result` or `error` and no `method` (a client answering a server's request).
    Response,
}

/// Where a classification came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The body was read; the result is authoritative.
    Body,
    /// Only the `Mcp-Method`/`Mcp-Name` headers (2026-07-28) were read; the id is unknown.
    Headers,
}

/// One JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub(crate) kind: Kind,
    pub(crate) id: Option<RawId>,
    /// `None` for responses.
    pub(crate) method: Option<Method>,
    /// The wire name when `method` is `Some(Method::Other)`.
    pub(crate) other_method: Option<Box<str>>,
    pub(crate) params_name: Option<Box<str>>,
    pub(crate) params_uri: Option<Box<str>>,
    pub(crate) meta_traceparent: Option<Box<str>>,
}

impl Message {
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The id as written, for requests (and responses); `None` for notifications.
    pub fn id(&self) -> Option<&RawId> {
        self.id.as_ref()
    }

    /// The closed method enum (metric labels); `None` for responses.
    pub fn method(&self) -> Option<Method> {
        self.method
    }

    /// The method as sent; `None` for responses. Policy globs match this.
    pub fn method_str(&self) -> Option<&str> {
        let m = self.method?;
        m.wire_name().or(self.other_method.as_deref())
    }

    /// The target the request names (SPEC §7): `params.name` of `tools/call` and `prompts/get`,
    /// `params.uri` of `resources/read`; `None` for every other method, or when that field is
    /// absent or not a string.
    pub fn name(&self) -> Option<&str> {
        match self.method?.name_field()? {
            NameField::Name => self.params_name.as_deref(),
            NameField::Uri => self.params_uri.as_deref(),
        }
    }

    /// Whether `tools` patterns apply to this message (it is a naming method).
    pub fn names_something(&self) -> bool {
        self.method.and_then(Method::name_field).is_some()
    }

    /// What an `Mcp-Name` header mirrors: the SPEC §7 name for naming methods, otherwise
    /// `params.name` or else `params.uri` (what 2026-07-28 clients send for, e.g.,
    /// `resources/subscribe`).
    pub fn mirrored_name(&self) -> Option<&str> {
        if self.names_something() {
            return self.name();
        }
        self.params_name.as_deref().or(self.params_uri.as_deref())
    }

    /// `params._meta.traceparent`, unvalidated (the trace module parses it).
    pub fn meta_traceparent(&self) -> Option<&str> {
        self.meta_traceparent.as_deref()
    }
}

/// The messages of one POST body (or of its routing headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Never empty.
    pub(crate) messages: Vec<Message>,
    pub(crate) is_batch: bool,
    pub(crate) origin: Origin,
}

impl Classification {
    pub(crate) fn header_only(message: Message) -> Classification {
        Classification {
            messages: vec![message],
            is_batch: false,
            origin: Origin::Headers,
        }
    }

    /// The messages; exactly one unless `is_batch`, never empty.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// A JSON array body (2025-03-26 batching). A one-element array is still a batch.
    pub fn is_batch(&self) -> bool {
        self.is_batch
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The message of a non-batch body.
    pub fn single(&self) -> Option<&Message> {
        match self.messages.as_slice() {
            [m] if !self.is_batch => Some(m),
            _ => None,
        }
    }

    /// The ids of the messages that have one, in body order (for error bodies).
    pub fn ids(&self) -> impl Iterator<Item = &RawId> {
        self.messages.iter().filter_map(Message::id)
    }

    /// `mcp_method` label: the method's closed label, `_batch`, or `_response`.
    pub fn method_label(&self) -> &'static str {
        match self.single() {
            None => BATCH_LABEL,
            Some(m) => m.method.map_or(RESPONSE_LABEL, Method::label),
        }
    }

    /// The name for the `mcp_tool` label (uncapped: the metrics module caps it per backend and
    /// uses `_other` beyond 200 names). `None` for batches and non-naming methods.
    pub fn tool_label(&self) -> Option<&str> {
        self.single()?.name()
    }

    /// `params._meta.traceparent` of the first message that has one (trace context is
    /// best-effort, so a batch adopts its first).
    pub fn meta_traceparent(&self) -> Option<&str> {
        self.messages.iter().find_map(Message::meta_traceparent)
    }
}

/// Whether a `Content-Type` is `application/json` (any parameters, any case).
pub fn is_json_content_type(content_type: &HeaderValue) -> bool {
    let v = content_type.as_bytes();
    let essence = v.split(|b| *b == b';').next().unwrap_or_default();
    essence
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/json")
}

/// Classify a request body. `Ok(None)`: pass untouched (not JSON, not JSON-RPC).
///
/// Pure: the result depends only on the arguments, and `body` is only read.
pub fn classify(
    content_type: Option<&HeaderValue>,
    body: &[u8],
) -> Result<Option<Classification>, ClassifyError> {
    if !content_type.is_some_and(is_json_content_type) {
        return Ok(None);
    }
    let (fields, is_batch) = match jsonrpc::parse(body) {
        Err(jsonrpc::Duplicate(key)) => return Err(ClassifyError::DuplicateKey(key)),
        Ok(Parsed::NotJson) => return Ok(None),
        Ok(Parsed::Single(f)) => (vec![f], false),
        Ok(Parsed::Batch(v)) => (v, true),
    };
    if fields.is_empty() {
        return Ok(None);
    }
    let mut raw = RawIds::new(body);
    let mut messages = Vec::with_capacity(fields.len());
    for (i, f) in fields.into_iter().enumerate() {
        match message(f, i, &mut raw) {
            Some(m) => messages.push(m),
            None => return Ok(None),
        }
    }
    Ok(Some(Classification {
        messages,
        is_batch,
        origin: Origin::Body,
    }))
}

fn message(f: Fields<'_>, index: usize, raw: &mut RawIds<'_>) -> Option<Message> {
    if !f.object || f.jsonrpc.as_ref()?.as_str()? != "2.0" {
        return None;
    }
    let id = match &f.id {
        None => None,
        Some(id) => Some(raw.id(id, index)?),
    };
    let kind = match (&f.method, &id) {
        (Some(Str::NotStr), _) => return None,
        (Some(Str::Str(_)), Some(_)) => Kind::Request,
        (Some(Str::Str(_)), None) => Kind::Notification,
        // JSON-RPC: a response has exactly one of result/error, and an id (maybe null).
        (None, Some(_)) if f.has_result != f.has_error => Kind::Response,
        (None, _) => return None,
    };
    let (method, other_method) = match f.method.as_ref().and_then(Str::as_str) {
        None => (None, None),
        Some(s) => match Method::from_wire(s) {
            Method::Other => (Some(Method::Other), Some(s.into())),
            m => (Some(m), None),
        },
    };
    let string = |s: &Option<Str<'_>>| s.as_ref().and_then(Str::as_str).map(Box::from);
    let (params_name, params_uri, meta_traceparent) = match &f.params {
        Some(p) => (string(&p.name), string(&p.uri), string(&p.traceparent)),
        None => (None, None, None),
    };
    Some(Message {
        kind,
        id,
        method,
        other_method,
        params_name,
        params_uri,
        meta_traceparent,
    })
}

/// Turns parsed ids into their exact JSON text, scanning the body only for the rare ids whose
/// canonical form could differ from what was written (escaped strings, non-integers, `-0`).
struct RawIds<'a> {
    body: &'a [u8],
    scanned: Option<Vec<Option<&'a str>>>,
}

impl<'a> RawIds<'a> {
    fn new(body: &'a [u8]) -> Self {
        RawIds {
            body,
            scanned: None,
        }
    }

    /// `None` for ids JSON-RPC does not allow (objects, arrays, booleans).
    fn id(&mut self, id: &Id<'_>, index: usize) -> Option<RawId> {
        use std::borrow::Cow;
        let canonical: Box<str> = match id {
            Id::Invalid => return None,
            Id::Null => "null".into(),
            Id::U64(n) => n.to_string().into(),
            Id::I64(n) => n.to_string().into(),
            // Borrowed means no escapes: the written text is exactly the quoted string.
            Id::Str(Cow::Borrowed(s)) => {
                let mut t = String::with_capacity(s.len() + 2);
                t.push('"');
                t.push_str(s);
                t.push('"');
                t.into()
            }
            Id::Str(Cow::Owned(_)) | Id::F64(_) => {
                let scanned = self
                    .scanned
                    .get_or_insert_with(|| jsonrpc::raw_ids(self.body));
                if let Some(Some(text)) = scanned.get(index) {
                    return Some(RawId((*text).into()));
                }
                // Unreachable for bodies serde_json accepted; fall back to an equal value.
                let value = match id {
                    Id::Str(s) => serde_json::to_string(s.as_ref()),
                    Id::F64(n) => serde_json::to_string(n),
                    _ => return None,
                };
                value.ok()?.into()
            }
        };
        Some(RawId(canonical))
    }
}
