//! The outbound route table: request parts -> the first matching route. Pure, no IO.
//!
//! Owns: host indexing (exact hosts in a hash map, `*.suffix` hosts by suffix, host-less
//! routes in a catch-all list) and the in-order evaluation of path, method and header
//! conditions. "First match wins" holds across all three buckets: candidates are merged by
//! route index. Does not own: picking a backend (`balance`) or forwarding.

use std::collections::HashMap;

use http::{HeaderMap, Method};

use crate::config::model::{HostMatch, PathMatch, Route};

/// What a route is matched against.
pub struct Request<'a> {
    /// Authority as sent (may include a port); compared case-insensitively.
    pub host: &'a str,
    pub path: &'a str,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The MCP classification of the request, when it is JSON-RPC.
    pub mcp: Option<&'a crate::mcp::Classification>,
}

/// Exact, exact-with-port, one per host label suffix, any. Hosts with more than 13 labels
/// only see their 13 first suffixes (deeper `*.suffix` routes would need 14+ labels).
const MAX_BUCKETS: usize = 16;

#[derive(Debug, Default)]
pub struct Table {
    exact: HashMap<String, Vec<usize>>,
    suffix: HashMap<String, Vec<usize>>,
    any: Vec<usize>,
}

/// Why a route did or did not match (for `outrider route`).
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Matched,
    Host,
    Path,
    Method,
    Header(String),
    Mcp,
}

impl Table {
    pub fn new(routes: &[Route]) -> Table {
        let mut t = Table::default();
        for (i, r) in routes.iter().enumerate() {
            match &r.host {
                HostMatch::Any => t.any.push(i),
                HostMatch::Exact(h) => t.exact.entry(h.clone()).or_default().push(i),
                HostMatch::Suffix(s) => t.suffix.entry(s.clone()).or_default().push(i),
            }
        }
        t
    }

    /// Index of the first route that matches, in config order.
    pub fn find<'a, R: AsRef<Route>>(&'a self, routes: &[R], req: &Request<'_>) -> Option<usize> {
        let lowered;
        let full = if req.host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = req.host.to_ascii_lowercase();
            lowered.as_str()
        } else {
            req.host
        };
        let bare = strip_port(full);
        // At most a handful of buckets: exact (with and without port), each suffix, any.
        let mut buckets: [&'a [usize]; MAX_BUCKETS] = [&[]; MAX_BUCKETS];
        let mut n = 0;
        let mut push = |b: Option<&'a Vec<usize>>| {
            if let Some(b) = b.filter(|b| !b.is_empty()) {
                if n < MAX_BUCKETS {
                    buckets[n] = b.as_slice();
                    n += 1;
                }
            }
        };
        push(self.exact.get(bare));
        if bare.len() != full.len() {
            push(self.exact.get(full));
        }
        if !self.suffix.is_empty() {
            for (i, _) in bare.match_indices('.') {
                push(self.suffix.get(&bare[i + 1..]));
            }
        }
        push(Some(&self.any));
        let mut cursors = [0usize; MAX_BUCKETS];
        loop {
            // Smallest next route index across buckets (k-way merge keeps config order).
            let mut best: Option<(usize, usize)> = None;
            for (k, b) in buckets[..n].iter().enumerate() {
                if let Some(&idx) = b.get(cursors[k]) {
                    if best.is_none_or(|(_, bi)| idx < bi) {
                        best = Some((k, idx));
                    }
                }
            }
            let (k, idx) = best?;
            cursors[k] += 1;
            // The bucket already matched the host.
            if check_rest(routes[idx].as_ref(), req) == Verdict::Matched {
                return Some(idx);
            }
        }
    }
}

/// Evaluates one route fully (host included) and says why it fails.
pub fn check(route: &Route, req: &Request<'_>) -> Verdict {
    if !host_matches(&route.host, req.host) {
        return Verdict::Host;
    }
    check_rest(route, req)
}

fn check_rest(route: &Route, req: &Request<'_>) -> Verdict {
    let ok = match &route.path {
        PathMatch::Any => true,
        PathMatch::Exact(p) => req.path == p,
        PathMatch::Prefix(p) => req.path.starts_with(p.as_str()),
    };
    if !ok {
        return Verdict::Path;
    }
    if route.method.as_ref().is_some_and(|m| m != req.method) {
        return Verdict::Method;
    }
    for (name, value) in &route.headers {
        if !req.headers.get_all(name).iter().any(|v| v == value) {
            return Verdict::Header(name.to_string());
        }
    }
    if route.mcp.as_ref().is_some_and(|m| !m.matches_opt(req.mcp)) {
        return Verdict::Mcp;
    }
    Verdict::Matched
}

fn host_matches(m: &HostMatch, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let bare = strip_port(&host);
    match m {
        HostMatch::Any => true,
        HostMatch::Exact(h) => h == bare || h == &host,
        HostMatch::Suffix(s) => {
            bare.len() > s.len() + 1
                && bare.ends_with(s.as_str())
                && bare.as_bytes()[bare.len() - s.len() - 1] == b'.'
        }
    }
}

/// `host:port` -> `host`; `[v6]:port` -> `[v6]`.
pub fn strip_port(authority: &str) -> &str {
    // A byte search: `str::rfind` with a `char` pattern costs several times more per request.
    match authority.bytes().rposition(|b| b == b':') {
        Some(i)
            if !authority[i + 1..].is_empty()
                && authority[i + 1..].bytes().all(|b| b.is_ascii_digit())
                && !authority[..i].ends_with(':') =>
        {
            &authority[..i]
        }
        _ => authority,
    }
}

#[cfg(test)]
mod tests;
