//! Property tests (proptest) of the classifier, and the JSON-RPC body generators that the
//! inspection property tests (`proxy::inspect::props`) reuse.
//!
//! Generated messages vary everything JSON lets a client vary without changing meaning: member
//! order, whitespace between tokens, how each string is escaped (keys included: `"\u0069d"` is
//! `"id"`), how an id number is written (`1.0`, `-0`, `1E+2`, integers past `u64`), unknown
//! members and nested `params`. Run with `cargo test --lib props`; `PROPTEST_CASES=N` for more
//! cases than the default 256.

use std::fmt::Write as _;

use http::HeaderValue;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::Value;

use super::super::*;
use super::json;

/// 256 cases (or `PROPTEST_CASES`); no regression files written into the source tree; room
/// to shrink a failing body of a few hundred bytes down to its essence.
pub(crate) fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        max_shrink_iters: 20_000,
        ..ProptestConfig::default()
    }
}

/// A JSON string: its value and one way of writing it (quotes included).
#[derive(Debug, Clone)]
pub(crate) struct JStr {
    pub(crate) value: String,
    pub(crate) text: String,
}

/// Appends `c` to a JSON string literal: raw, as a short escape (`\n`, `\/`) or as `\uXXXX`
/// (a surrogate pair past the BMP), as `style` (0..16) picks; escapes where JSON requires one.
fn write_char(out: &mut String, c: char, style: u8) {
    let short = match c {
        '"' => Some('"'),
        '\\' => Some('\\'),
        '/' => Some('/'),
        '\n' => Some('n'),
        '\t' => Some('t'),
        '\r' => Some('r'),
        '\u{8}' => Some('b'),
        '\u{c}' => Some('f'),
        _ => None,
    };
    let must_escape = c == '"' || c == '\\' || c < ' ';
    match short {
        _ if !must_escape && style < 12 => out.push(c),
        Some(s) if style < 14 => {
            out.push('\\');
            out.push(s);
        }
        _ => {
            for unit in c.encode_utf16(&mut [0; 2]) {
                if style % 2 == 0 {
                    write!(out, "\\u{unit:04x}").unwrap();
                } else {
                    write!(out, "\\u{unit:04X}").unwrap();
                }
            }
        }
    }
}

fn encode(chars: impl IntoIterator<Item = (char, u8)>) -> JStr {
    let mut value = String::new();
    let mut text = String::from('"');
    for (c, style) in chars {
        value.push(c);
        write_char(&mut text, c, style);
    }
    text.push('"');
    JStr { value, text }
}

/// Mostly ASCII, with JSON's special characters, controls, BOM, line separators, astral planes.
fn arb_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::char::range('a', 'z'),
        2 => select(vec![
            '"', '\\', '/', '\n', '\t', '\r', '\0', '\u{1f}', '\u{7f}', ' ', '_', '-', 'é', '\u{2028}',
            '\u{feff}', '😀', '\u{10ffff}',
        ]),
        2 => any::<char>(),
    ]
}

/// An arbitrary string (up to `max` chars), escaped at random.
pub(crate) fn arb_jstr(max: usize) -> impl Strategy<Value = JStr> {
    vec((arb_char(), 0u8..16), 0..=max).prop_map(encode)
}

/// A fixed string (a key, a method name), half the time plain, else with random escapes.
fn spelled(s: String) -> impl Strategy<Value = JStr> {
    let chars: Vec<char> = s.chars().collect();
    (any::<bool>(), vec(0u8..16, chars.len())).prop_map(move |(plain, styles)| {
        let styles = styles.into_iter().map(|st| if plain { 0 } else { st });
        encode(chars.iter().copied().zip(styles))
    })
}

/// The text of a JSON-RPC id: integers (past `u64` too), decimals and exponents, strings, null.
fn arb_id() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("null".to_string()),
        Just("-0".to_string()),
        "[1-9][0-9]{19,30}",
        "-?(0|[1-9][0-9]{0,6})(\\.[0-9]{1,4})?([eE][+-]?[0-9]{1,2})?",
        arb_jstr(12).prop_map(|s| s.text),
    ]
}

/// Any JSON value, nested a few levels (`params.arguments`, unknown members).
pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        4 => Just(Value::Null),
        4 => any::<bool>().prop_map(Value::from),
        4 => any::<i64>().prop_map(Value::from),
        4 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        8 => arb_jstr(16).prop_map(|s| Value::from(s.value)),
        // Now and then a large string, so some bodies reach a few KiB.
        1 => (0usize..4096).prop_map(|n| Value::from("x".repeat(n))),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((arb_jstr(8), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.value, v)).collect())),
        ]
    })
}

/// A member whose key outrider does not read, at the top level (`reserved`) or in `params`.
fn arb_extra(reserved: &'static [&'static str]) -> impl Strategy<Value = (JStr, Value)> {
    (
        arb_jstr(8).prop_filter("not a key outrider reads", move |k| {
            !reserved.contains(&k.value.as_str())
        }),
        arb_value(),
    )
}

const TOP_KEYS: &[&str] = &["jsonrpc", "id", "method", "params", "result", "error"];
const PARAMS_KEYS: &[&str] = &["name", "uri", "_meta"];

/// The method: every known one, the three naming ones more often, or any string (`_other`).
fn arb_method() -> impl Strategy<Value = JStr> {
    let known: Vec<String> = Method::all()
        .filter_map(Method::wire_name)
        .map(str::to_owned)
        .collect();
    let naming: Vec<String> = ["tools/call", "prompts/get", "resources/read"]
        .map(String::from)
        .to_vec();
    prop_oneof![
        2 => select(known).prop_flat_map(spelled),
        2 => select(naming).prop_flat_map(spelled),
        1 => arb_jstr(12),
    ]
}

/// One generated JSON-RPC request (with an id) or notification (without).
#[derive(Debug, Clone)]
pub(crate) struct GenMessage {
    pub(crate) method: JStr,
    /// The id exactly as written; `None`: a notification.
    pub(crate) id: Option<String>,
    pub(crate) name: Option<JStr>,
    pub(crate) uri: Option<JStr>,
    pub(crate) traceparent: Option<JStr>,
    /// Whether `params` is present at all (then an object).
    params: bool,
    arguments: Option<Value>,
    params_extra: Vec<(JStr, Value)>,
    meta_extra: Vec<(JStr, Value)>,
    top_extra: Vec<(JStr, Value)>,
    /// How `"jsonrpc"`, `"2.0"`, `"id"`, `"method"`, `"params"`, `"name"`, `"uri"`, `"_meta"`,
    /// `"traceparent"`, `"arguments"` are spelled.
    spellings: Vec<JStr>,
    /// Sort keys for member order.
    order: Vec<u8>,
    pretty: bool,
}

const SPELLED: [&str; 10] = [
    "jsonrpc",
    "2.0",
    "id",
    "method",
    "params",
    "name",
    "uri",
    "_meta",
    "traceparent",
    "arguments",
];

pub(crate) fn arb_message() -> impl Strategy<Value = GenMessage> {
    let spellings = SPELLED
        .iter()
        .map(|s| spelled(s.to_string()))
        .collect::<Vec<_>>();
    (
        (
            arb_method(),
            prop::option::weighted(0.8, arb_id()),
            prop::option::weighted(0.7, arb_jstr(16)),
            prop::option::weighted(0.3, arb_jstr(16)),
            prop::option::weighted(0.2, arb_jstr(16)),
            prop::bool::weighted(0.9),
        ),
        (
            prop::option::of(arb_value()),
            vec(arb_extra(PARAMS_KEYS), 0..3),
            vec(
                arb_extra(&[]).prop_filter("not traceparent", |(k, _)| k.value != "traceparent"),
                0..2,
            ),
            vec(arb_extra(TOP_KEYS), 0..3),
            spellings,
            vec(any::<u8>(), 16),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (method, id, name, uri, traceparent, params),
                (arguments, params_extra, meta_extra, top_extra, spellings, order, pretty),
            )| GenMessage {
                method,
                id,
                name,
                uri,
                traceparent,
                params,
                arguments,
                params_extra,
                meta_extra,
                top_extra,
                spellings,
                order,
                pretty,
            },
        )
}

/// Writes JSON, taking the whitespace between tokens from a generated list in turn.
struct Writer<'a> {
    out: String,
    ws: &'a [String],
    next: usize,
}

impl Writer<'_> {
    fn ws(&mut self) {
        if let Some(w) = self.ws.get(self.next % self.ws.len().max(1)) {
            self.out.push_str(w);
        }
        self.next += 1;
    }

    fn tok(&mut self, s: &str) {
        self.ws();
        self.out.push_str(s);
    }

    /// `{ k : v , ... }` with members in the given order.
    fn object(&mut self, members: Vec<(String, String)>) {
        self.tok("{");
        for (i, (k, v)) in members.into_iter().enumerate() {
            if i > 0 {
                self.tok(",");
            }
            self.tok(&k);
            self.tok(":");
            self.tok(&v);
        }
        self.tok("}");
    }
}

fn json_text(v: &Value, pretty: bool) -> String {
    if pretty {
        serde_json::to_string_pretty(v).unwrap()
    } else {
        serde_json::to_string(v).unwrap()
    }
}

impl GenMessage {
    fn write(&self, w: &mut Writer<'_>) {
        let sp = |k: &str| {
            let i = SPELLED.iter().position(|s| *s == k).unwrap();
            self.spellings[i].text.clone()
        };
        let mut keys = self.order.iter().copied().cycle();
        let mut ordered = |members: Vec<(String, String)>| {
            let mut keyed: Vec<_> = members.into_iter().map(|m| (keys.next(), m)).collect();
            keyed.sort_by_key(|(k, _)| *k);
            keyed.into_iter().map(|(_, m)| m).collect::<Vec<_>>()
        };
        let text = |v: &Value| json_text(v, self.pretty);
        let mut top = vec![
            (sp("jsonrpc"), sp("2.0")),
            (sp("method"), self.method.text.clone()),
        ];
        if let Some(id) = &self.id {
            top.push((sp("id"), id.clone()));
        }
        top.extend(
            self.top_extra
                .iter()
                .map(|(k, v)| (k.text.clone(), text(v))),
        );
        if self.params {
            let mut p = Vec::new();
            if let Some(n) = &self.name {
                p.push((sp("name"), n.text.clone()));
            }
            if let Some(u) = &self.uri {
                p.push((sp("uri"), u.text.clone()));
            }
            if let Some(a) = &self.arguments {
                p.push((sp("arguments"), text(a)));
            }
            p.extend(
                self.params_extra
                    .iter()
                    .map(|(k, v)| (k.text.clone(), text(v))),
            );
            if let Some(t) = &self.traceparent {
                let mut meta = vec![(sp("traceparent"), t.text.clone())];
                meta.extend(
                    self.meta_extra
                        .iter()
                        .map(|(k, v)| (k.text.clone(), text(v))),
                );
                p.push((sp("_meta"), sub(w, ordered(meta))));
            }
            top.push((sp("params"), sub(w, ordered(p))));
        }
        w.object(ordered(top));
    }

    /// What `Message::name` must say: `params.name` of `tools/call`/`prompts/get`, `params.uri`
    /// of `resources/read`, else nothing.
    pub(crate) fn expected_name(&self) -> Option<&str> {
        if !self.params {
            return None;
        }
        match Method::from_wire(&self.method.value).name_field()? {
            NameField::Name => self.name.as_ref().map(|n| n.value.as_str()),
            NameField::Uri => self.uri.as_ref().map(|u| u.value.as_str()),
        }
    }

    pub(crate) fn expected_traceparent(&self) -> Option<&str> {
        self.traceparent
            .as_ref()
            .filter(|_| self.params)
            .map(|t| t.value.as_str())
    }
}

/// Writes `members` as an object with the writer's whitespace, returning the text.
fn sub(w: &mut Writer<'_>, members: Vec<(String, String)>) -> String {
    let mut inner = Writer {
        out: String::new(),
        ws: w.ws,
        next: w.next,
    };
    inner.object(members);
    w.next = inner.next;
    inner.out
}

/// A generated body: one message, or a batch of one to four.
#[derive(Debug, Clone)]
pub(crate) struct GenBody {
    pub(crate) text: String,
    pub(crate) messages: Vec<GenMessage>,
    pub(crate) batch: bool,
}

pub(crate) fn arb_body() -> impl Strategy<Value = GenBody> {
    (
        vec(arb_message(), 1..4),
        any::<bool>(),
        vec("[ \t\r\n]{0,3}", 0..8),
    )
        .prop_map(|(messages, batch, ws)| {
            let batch = batch || messages.len() > 1;
            let mut w = Writer {
                out: String::new(),
                ws: &ws,
                next: 0,
            };
            if batch {
                w.tok("[");
            }
            for (i, m) in messages.iter().enumerate() {
                if i > 0 {
                    w.tok(",");
                }
                m.write(&mut w);
            }
            if batch {
                w.tok("]");
            }
            w.ws();
            GenBody {
                text: w.out,
                messages,
                batch,
            }
        })
}

/// Bodies for the never-fails properties: arbitrary bytes, generated JSON-RPC, and generated
/// JSON-RPC broken one way or another (a byte overwritten, truncated, a duplicate `method`).
pub(crate) fn arb_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..512),
        arb_body().prop_map(|b| b.text.into_bytes()),
        (arb_body(), any::<Index>(), any::<u8>(), 0u8..3).prop_map(|(b, at, byte, how)| {
            let mut body = b.text.into_bytes();
            let i = at.index(body.len());
            match how {
                0 => body[i] = byte,
                1 => body.truncate(i),
                _ => {
                    let open = body.iter().position(|b| *b == b'{').unwrap();
                    body.splice(open + 1..open + 1, *br#""method":"x","#);
                }
            }
            body
        }),
    ]
}

fn arb_content_type() -> impl Strategy<Value = Option<HeaderValue>> {
    prop_oneof![
        4 => Just(Some(HeaderValue::from_static("application/json"))),
        1 => Just(Some(HeaderValue::from_static("Application/JSON; charset=utf-8"))),
        1 => Just(Some(HeaderValue::from_static("text/plain"))),
        1 => Just(None),
        1 => "[ -~]{0,24}".prop_map(|s| HeaderValue::from_str(&s).ok()),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// A generated request or notification (or batch of them) classifies to exactly the
    /// method, id text, name and traceparent it was generated with.
    #[test]
    fn generated_messages_round_trip(body in arb_body()) {
        let c = classify(Some(&json()), body.text.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", body.text)))?;
        let c = c.ok_or_else(|| TestCaseError::fail(format!("not classified: {}", body.text)))?;
        prop_assert_eq!(c.origin(), Origin::Body);
        prop_assert_eq!(c.is_batch(), body.batch);
        prop_assert_eq!(c.messages().len(), body.messages.len());
        for (g, m) in body.messages.iter().zip(c.messages()) {
            let kind = if g.id.is_some() { Kind::Request } else { Kind::Notification };
            prop_assert_eq!(m.kind(), kind);
            prop_assert_eq!(m.method_str(), Some(g.method.value.as_str()));
            prop_assert_eq!(m.method(), Some(Method::from_wire(&g.method.value)));
            prop_assert_eq!(m.id().map(RawId::as_str), g.id.as_deref());
            prop_assert_eq!(m.name(), g.expected_name());
            prop_assert_eq!(m.meta_traceparent(), g.expected_traceparent());
        }
        if !body.batch {
            prop_assert_eq!(c.tool_label(), body.messages[0].expected_name());
        }
    }

    /// `classify` is a pure function of its arguments: the same content type and bytes (even
    /// in another buffer) give the same result, whatever the bytes are.
    #[test]
    fn classify_is_pure(ct in arb_content_type(), body in arb_payload()) {
        let first = classify(ct.as_ref(), &body);
        let copy = body.clone();
        prop_assert_eq!(classify(ct.as_ref(), &body), first.clone());
        prop_assert_eq!(classify(ct.as_ref(), &copy), first);
    }
}
