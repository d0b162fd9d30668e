//! SSE event boundaries, so keep-alive comments go only between events.
//!
//! Owns: [`EventBoundary`], a state machine fed with response body chunks as they pass that
//! answers "is the stream between two events right now?", and the [`KEEPALIVE`] bytes. Does
//! not own: the timer, or the body wrapper that forwards chunks and injects (the proxy's
//! stream layer). The tracker only reads chunks; they are forwarded unchanged.
//!
//! SSE (WHATWG HTML §9.2) ends lines with CRLF, LF or CR, and ends an event with an empty line.
//! The stream is at a boundary before its first byte and right after an empty line. A CR that
//! ends an empty line counts as a boundary even though an LF may follow: injecting there turns
//! that LF into one more empty line, which dispatches nothing.

/// The comment injected on a silent stream (SPEC §7 `mcp.sse_keepalive`).
pub const KEEPALIVE: &[u8] = b": keepalive\n\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Start of stream, or after an empty line ended by LF.
    Boundary,
    /// After an empty line ended by CR (an LF may follow).
    BoundaryCr,
    /// Inside an event, at the start of a line.
    LineStart,
    /// Inside a non-empty line.
    InLine,
    /// A CR ended a non-empty line (an LF may follow).
    LineCr,
}

/// Tracks whether an SSE stream is between events.
#[derive(Debug, Clone)]
pub struct EventBoundary {
    state: State,
}

impl Default for EventBoundary {
    fn default() -> Self {
        EventBoundary {
            state: State::Boundary,
        }
    }
}

impl EventBoundary {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next body chunk. Only the bytes after the chunk's last non-line-break byte
    /// matter, so this is O(trailing line breaks), not O(chunk).
    pub fn feed(&mut self, chunk: &[u8]) {
        let tail = match chunk.iter().rposition(|b| !matches!(b, b'\r' | b'\n')) {
            Some(last) => {
                self.state = State::InLine;
                &chunk[last + 1..]
            }
            None => chunk,
        };
        for &b in tail {
            self.step(b);
        }
    }

    fn step(&mut self, b: u8) {
        use State::*;
        self.state = match (self.state, b) {
            (InLine, b'\n') => LineStart,
            (InLine, b'\r') => LineCr,
            (LineCr, b'\n') => LineStart,
            (BoundaryCr, b'\n') => Boundary,
            (Boundary | BoundaryCr | LineStart | LineCr, b'\r') => BoundaryCr,
            (Boundary | LineStart, b'\n') => Boundary,
            (_, _) => InLine,
        };
    }

    /// Whether injecting [`KEEPALIVE`] now would land between two events.
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Boundary | State::BoundaryCr)
    }

    /// Record that [`KEEPALIVE`] was injected (same as feeding it).
    pub fn injected(&mut self) {
        self.feed(KEEPALIVE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-at-a-time reference: the same transitions without the fast path.
    fn naive(bytes: &[u8]) -> bool {
        let mut t = EventBoundary::new();
        for &b in bytes {
            t.step(b);
        }
        t.at_boundary()
    }

    fn boundary_after(chunks: &[&[u8]]) -> bool {
        let mut t = EventBoundary::new();
        for c in chunks {
            t.feed(c);
        }
        t.at_boundary()
    }

    #[test]
    fn boundaries_of_whole_streams() {
        let cases: &[(&[u8], bool)] = &[
            (b"", true),
            (b"data: a", false),
            (b"data: a\n", false),
            (b"data: a\n\n", true),
            (b"data: a\r\n", false),
            (b"data: a\r\n\r\n", true),
            (b"data: a\r\r", true),
            (b"data: a\r\r\n", true),
            (b"data: a\n\ndata: b", false),
            (b"event: message\nid: 1\ndata: {}\n\n", true),
            (b"\n\n\n", true),
            (b": comment\n\n", true),
            (b"data: a\n\r\n", true),
            (b"data: a\r\n\n", true),
            (b"data: \n\n\ndata: x\n", false),
        ];
        for (stream, expected) in cases {
            let shown = String::from_utf8_lossy(stream);
            assert_eq!(naive(stream), *expected, "naive {shown:?}");
            assert_eq!(boundary_after(&[stream]), *expected, "feed {shown:?}");
        }
    }

    #[test]
    fn every_split_position_agrees_with_the_whole() {
        let stream: &[u8] =
            b"id: 1\r\ndata: {\"a\":1}\r\n\r\n: c\n\nevent: x\rdata: y\r\rdata: z\n\n";
        for end in 0..=stream.len() {
            let prefix = &stream[..end];
            let expected = naive(prefix);
            for split in 0..=end {
                let (a, b) = prefix.split_at(split);
                assert_eq!(boundary_after(&[a, b]), expected, "end {end} split {split}");
            }
            let bytes: Vec<&[u8]> = prefix.chunks(1).collect();
            assert_eq!(boundary_after(&bytes), expected, "bytewise end {end}");
        }
    }

    #[test]
    fn injection_keeps_the_boundary() {
        let mut t = EventBoundary::new();
        t.feed(b"data: a\n\n");
        assert!(t.at_boundary());
        t.injected();
        assert!(t.at_boundary());
        t.feed(b"data: b");
        assert!(!t.at_boundary());
        t.feed(b"\n");
        assert!(!t.at_boundary());
        t.feed(b"\n");
        assert!(t.at_boundary());
    }

    #[test]
    fn random_streams_match_the_reference() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = [b'\r', b'\n', b'a', b':', b' '];
        for _ in 0..2000 {
            let len = rng.usize(0..40);
            let s: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let mut t = EventBoundary::new();
            let mut rest = &s[..];
            while !rest.is_empty() {
                let (a, b) = rest.split_at(rng.usize(0..=rest.len()));
                t.feed(a);
                rest = b;
            }
            assert_eq!(
                t.at_boundary(),
                naive(&s),
                "{:?}",
                String::from_utf8_lossy(&s)
            );
        }
    }
}
