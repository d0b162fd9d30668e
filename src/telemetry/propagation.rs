//! Trace context across hops: W3C `traceparent` (with `tracestate` passed through) and B3
//! (single `b3` and multi `x-b3-*`), continued with a new span id per hop or started.
//!
//! Owns: parsing and rewriting those headers on the request going upstream, and the
//! sampling decision for new traces. Does not own: exporting spans or logging.

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const B3: HeaderName = HeaderName::from_static("b3");
pub const X_B3_TRACEID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub const X_B3_SPANID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub const X_B3_PARENTSPANID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub const X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");

/// Which formats a sidecar reads and writes (`tracing.propagation`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub w3c: bool,
    pub b3: bool,
    /// Probability that a trace started here is sampled (0.0..=1.0).
    pub sample_ratio: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            w3c: true,
            b3: true,
            sample_ratio: 1.0,
        }
    }
}

/// The span of this hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub trace_id: u128,
    pub span_id: u64,
    /// The caller's span, when the trace was continued.
    pub parent_id: Option<u64>,
    pub sampled: bool,
}

impl Span {
    pub fn trace_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    pub fn span_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    pub fn parent_hex(&self) -> Option<String> {
        self.parent_id.map(|p| format!("{p:016x}"))
    }
}

/// MCP convention: a request without `traceparent` whose JSON-RPC `params._meta.traceparent`
/// is valid continues that trace (SPEC §7).
pub fn adopt_meta_traceparent(headers: &mut HeaderMap, mcp: Option<&crate::mcp::Classification>) {
    // The body first: most requests carry no `_meta.traceparent`, and then no lookup is needed.
    let Some(t) = mcp.and_then(|c| c.meta_traceparent()) else {
        return;
    };
    if headers.contains_key(&TRACEPARENT) {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(t) {
        headers.insert(TRACEPARENT, v);
    }
}

/// The trace headers a request carries, from one pass over its fields: a request has a few
/// fields, and comparing names costs less than hashing each name looked up (most requests
/// carry no B3 at all, and the outbound's often no `traceparent`).
struct Seen {
    /// Values of `traceparent` (0, 1, or 2 for "several").
    traceparent: usize,
    /// The first `traceparent`, parsed (when valid).
    parent: Option<(u128, u64, bool)>,
    b3: bool,
}

impl Seen {
    fn scan(headers: &HeaderMap) -> Seen {
        let mut seen = Seen {
            traceparent: 0,
            parent: None,
            b3: false,
        };
        // Every value (a repeated field shows its name once per value).
        for (name, value) in headers {
            if name == TRACEPARENT {
                if seen.traceparent == 0 {
                    seen.parent = parse_traceparent(value.as_bytes());
                }
                seen.traceparent = (seen.traceparent + 1).min(2);
            } else if name == B3 || name == X_B3_TRACEID {
                seen.b3 = true;
            }
        }
        seen
    }
}

/// Continues (or starts) the trace of a request and rewrites its headers for the next hop.
pub fn propagate(headers: &mut HeaderMap, s: &Settings) -> Span {
    let seen = Seen::scan(headers);
    let b3 = s.b3 && seen.b3;
    let incoming = seen
        .parent
        .filter(|_| s.w3c)
        .or_else(|| b3.then(|| parse_b3(headers)).flatten());
    let span = match incoming {
        Some((trace_id, parent, sampled)) => Span {
            trace_id,
            span_id: new_span_id(),
            parent_id: Some(parent),
            sampled,
        },
        None => Span {
            trace_id: nonzero_u128(),
            span_id: new_span_id(),
            parent_id: None,
            sampled: s.sample_ratio >= 1.0 || fastrand::f64() < s.sample_ratio,
        },
    };
    if s.w3c {
        set_counted(headers, TRACEPARENT, traceparent(&span), seen.traceparent);
    }
    if b3 {
        rewrite_b3(headers, &span);
    }
    span
}

/// `00-<trace>-<span>-<flags>`, formatted on the stack. Like every per-request unique value,
/// marked sensitive: HTTP/2 sends it never-indexed instead of churning the HPACK table.
fn traceparent(span: &Span) -> HeaderValue {
    let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(&mut buf[3..35], span.trace_id);
    hex_into(&mut buf[36..52], u128::from(span.span_id));
    if span.sampled {
        buf[54] = b'1';
    }
    unique(&buf)
}

/// Sets `name` to `value` alone, given how many values it has now (0, 1, or 2 for several;
/// callers count them in a pass over the names they make anyway). Like `HeaderMap::insert`,
/// but a single existing value is overwritten in place (`insert` reserves room before it
/// looks for the name, so on a map at its load limit, as HTTP/2 decoding leaves it, it
/// rehashes the whole map even when it only replaces a value), found by comparing names; an
/// absent name costs one hashed lookup, the append. Several values go through `insert`, which
/// removes them all.
pub fn set_counted(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue, count: usize) {
    match count {
        0 => {
            headers.append(name, value);
        }
        1 => {
            // The one value, found by comparing names rather than hashing this one.
            if let Some((_, slot)) = headers.iter_mut().find(|(k, _)| *k == name) {
                *slot = value;
            }
        }
        _ => {
            headers.insert(name, value);
        }
    }
}

/// Lower-case hex of the low `4 * out.len()` bits of `n`, most significant first
/// (`out.len()` ≤ 32).
pub fn hex_into(out: &mut [u8], n: u128) {
    // Two 64-bit halves (a 128-bit shift costs several instructions), two digits per step.
    let (hi, lo) = out.split_at_mut(out.len().saturating_sub(16));
    hex_u64(lo, n as u64);
    hex_u64(hi, (n >> 64) as u64);
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The two hex digits of every byte value.
const PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    t
};

/// Lower-case hex of the low `4 * out.len()` bits of `bits` (`out.len()` ≤ 16).
fn hex_u64(out: &mut [u8], mut bits: u64) {
    let mut pairs = out.rchunks_exact_mut(2);
    for pair in &mut pairs {
        pair.copy_from_slice(&PAIRS[(bits & 0xff) as usize]);
        bits >>= 8;
    }
    // An odd width: the leading digit.
    if let [d] = pairs.into_remainder() {
        *d = DIGITS[(bits & 0xf) as usize];
    }
}

/// A header value unique to one request (ids): never indexed by HPACK.
pub fn unique(bytes: &[u8]) -> HeaderValue {
    let mut v = HeaderValue::from_bytes(bytes).expect("hex is a valid header value");
    v.set_sensitive(true);
    v
}

fn new_span_id() -> u64 {
    loop {
        let v = fastrand::u64(..);
        if v != 0 {
            return v;
        }
    }
}

fn nonzero_u128() -> u128 {
    loop {
        let v = fastrand::u128(..);
        if v != 0 {
            return v;
        }
    }
}

/// `00-<32 hex trace>-<16 hex parent>-<2 hex flags>`; all-zero ids and upper-case hex are
/// invalid; versions after 00 may append fields (`-…`), version ff is invalid.
fn parse_traceparent(value: &[u8]) -> Option<(u128, u64, bool)> {
    let v = value.trim_ascii();
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = lower_hex(&v[0..2])?;
    // Version 00 has exactly four fields; later versions may append more.
    if version == 0xff || (v.len() > 55 && (version == 0 || v[55] != b'-')) {
        return None;
    }
    let trace_id = u128::from(lower_hex(&v[3..19])?) << 64 | u128::from(lower_hex(&v[19..35])?);
    let trace_id = Some(trace_id).filter(|t| *t != 0)?;
    let parent_id = lower_hex(&v[36..52]).filter(|p| *p != 0)?;
    let flags = lower_hex(&v[53..55])?;
    Some((trace_id, parent_id, flags & 1 == 1))
}

/// Lower-case hex digits (at most 16) as a number.
fn lower_hex(s: &[u8]) -> Option<u64> {
    // One table load per digit (and one test for the whole run) instead of range matches.
    let mut acc = 0u64;
    let mut bad = 0u8;
    for &b in s {
        let d = HEX_VALUE[usize::from(b)];
        bad |= d;
        acc = acc << 4 | u64::from(d & 0xf);
    }
    (bad & 0x80 == 0).then_some(acc)
}

/// The value of each lower-case hex digit; 0x80 marks every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut i = 0;
    while i < 16 {
        t[DIGITS[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn parse_b3(h: &HeaderMap) -> Option<(u128, u64, bool)> {
    if let Some(v) = h.get(&B3).and_then(|v| v.to_str().ok()) {
        // {trace}-{span}[-{sampled}[-{parent}]]; a lone "0"/"1"/"d" carries no context.
        let mut it = v.trim().split('-');
        let trace = parse_b3_trace(it.next()?)?;
        let span = u64::from_str_radix(it.next()?, 16)
            .ok()
            .filter(|s| *s != 0)?;
        let sampled = !matches!(it.next(), Some("0"));
        return Some((trace, span, sampled));
    }
    let trace = parse_b3_trace(h.get(&X_B3_TRACEID)?.to_str().ok()?)?;
    let span = u64::from_str_radix(h.get(&X_B3_SPANID)?.to_str().ok()?, 16)
        .ok()
        .filter(|s| *s != 0)?;
    let sampled = !matches!(
        h.get(&X_B3_SAMPLED).and_then(|v| v.to_str().ok()),
        Some("0" | "false")
    );
    Some((trace, span, sampled))
}

/// B3 trace ids are 16 or 32 hex digits (64-bit ids are left-padded).
fn parse_b3_trace(s: &str) -> Option<u128> {
    (s.len() == 16 || s.len() == 32)
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
        .filter(|t| *t != 0)
}

/// B3 is continued only in the format(s) the caller used.
fn rewrite_b3(h: &mut HeaderMap, span: &Span) {
    let sampled = if span.sampled { "1" } else { "0" };
    if h.contains_key(&B3) {
        let mut v = format!("{:032x}-{:016x}-{sampled}", span.trace_id, span.span_id);
        if let Some(p) = span.parent_id {
            v.push_str(&format!("-{p:016x}"));
        }
        h.insert(B3, unique(v.as_bytes()));
    }
    if h.contains_key(&X_B3_TRACEID) {
        // Keep the caller's trace id width (64-bit ids stay 64-bit).
        let width = h.get(&X_B3_TRACEID).map_or(32, |v| v.len());
        let trace = if width == 16 {
            format!("{:016x}", span.trace_id as u64)
        } else {
            format!("{:032x}", span.trace_id)
        };
        let set = |h: &mut HeaderMap, n: HeaderName, v: String| {
            h.insert(n, unique(v.as_bytes()));
        };
        set(h, X_B3_TRACEID, trace);
        set(h, X_B3_SPANID, format!("{:016x}", span.span_id));
        match span.parent_id {
            Some(p) => set(h, X_B3_PARENTSPANID, format!("{p:016x}")),
            None => {
                h.remove(&X_B3_PARENTSPANID);
            }
        }
        set(h, X_B3_SAMPLED, sampled.to_owned());
    }
}

#[cfg(test)]
mod tests;
