//! MCP conditions of routes and inbound authorization rules, and retry idempotency.
//!
//! Owns: [`McpMatch`] (`match.mcp` / `rules[].mcp`: `methods` and `tools` globs) and
//! [`is_idempotent`]. Does not own: compiling the YAML (config validation builds `McpMatch`),
//! the route table, or the retry layer (which also honours the route's `non_idempotent: true`
//! and the "nothing reached the upstream" cases of SPEC §7).
//!
//! Semantics (SPEC §7):
//! - An empty list does not constrain. `methods` globs match the method as sent; `tools` globs
//!   constrain only messages that name something (`tools/call`, `prompts/get` by `params.name`,
//!   `resources/read` by `params.uri`); other methods are governed by `methods` alone. A naming
//!   message without a name never satisfies a non-empty `tools`.
//! - A response (a client answering a server's request) has no method; it is matched as the
//!   empty method name, so only an empty `methods` or a `*` glob admits it.
//! - A batch matches only if every element matches. This is the rule for authorization (SPEC)
//!   and, by choice, for routing too: a route claims a batch only when it would claim each of
//!   its elements; a mixed batch falls through to a later route (one without `mcp` conditions,
//!   or `no-route`). Picking by the first element would let a batch smuggle a refused tool
//!   behind an allowed one to a backend chosen for the allowed one.
//! - A request that was not classified (not JSON-RPC, not inspected) satisfies only an
//!   unconstrained `McpMatch` ([`McpMatch::matches_opt`]).

use glob::Pattern;

use super::classify::{Classification, Kind, Message};
use super::method::Method;

#[cfg(test)]
mod tests;

/// An `mcp` condition: `{ methods: [...], tools: [...] }` (glob `*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct McpMatch {
    pub methods: Vec<Pattern>,
    pub tools: Vec<Pattern>,
}

impl McpMatch {
    /// Compile globs (config validation reports the error with its YAML path).
    pub fn new<M: AsRef<str>, T: AsRef<str>>(
        methods: &[M],
        tools: &[T],
    ) -> Result<McpMatch, glob::PatternError> {
        Ok(McpMatch {
            methods: compile_all(methods)?,
            tools: compile_all(tools)?,
        })
    }

    /// Both lists empty: matches everything, classified or not.
    pub fn is_unconstrained(&self) -> bool {
        self.methods.is_empty() && self.tools.is_empty()
    }

    /// Every message matches.
    pub fn matches(&self, c: &Classification) -> bool {
        self.first_refused(c).is_none()
    }

    /// For a request that may not have been classified (`None`: pass-through body).
    pub fn matches_opt(&self, c: Option<&Classification>) -> bool {
        match c {
            Some(c) => self.matches(c),
            None => self.is_unconstrained(),
        }
    }

    /// The first message that does not match, for a denial that names the refused tool.
    pub fn first_refused<'a>(&self, c: &'a Classification) -> Option<&'a Message> {
        c.messages().iter().find(|m| !self.matches_message(m))
    }

    /// One message against `methods` and (for naming methods) `tools`.
    pub fn matches_message(&self, m: &Message) -> bool {
        let method = m.method_str().unwrap_or("");
        if !self.methods.is_empty() && !self.methods.iter().any(|p| p.matches(method)) {
            return false;
        }
        if self.tools.is_empty() || !m.names_something() {
            return true;
        }
        m.name()
            .is_some_and(|name| self.tools.iter().any(|p| p.matches(name)))
    }
}

fn compile_all<S: AsRef<str>>(v: &[S]) -> Result<Vec<Pattern>, glob::PatternError> {
    v.iter().map(|s| Pattern::new(s.as_ref())).collect()
}

/// Whether a request may be retried after bytes reached the upstream (SPEC §7): the reads
/// (`tools/list`, `resources/list`, `resources/read`, `prompts/list`, `prompts/get`,
/// `server/discover`, `ping`) always; `tools/call` only when the tool matches
/// `idempotent_tools` (tool annotations are untrusted and never count); everything else,
/// notifications and responses included, never. A batch only when every element is.
/// Connect failures and refused streams are always safe and are the retry layer's business,
/// as is the route's `non_idempotent: true` override.
pub fn is_idempotent(c: &Classification, idempotent_tools: &[Pattern]) -> bool {
    // Headers alone (a body too large to read) could claim a read for a `tools/call` body.
    if c.origin == crate::mcp::classify::Origin::Headers {
        return false;
    }
    c.messages()
        .iter()
        .all(|m| message_is_idempotent(m, idempotent_tools))
}

fn message_is_idempotent(m: &Message, idempotent_tools: &[Pattern]) -> bool {
    if m.kind() == Kind::Response {
        return false;
    }
    match m.method() {
        Some(Method::ToolsCall) => m
            .name()
            .is_some_and(|n| idempotent_tools.iter().any(|p| p.matches(n))),
        Some(method) => method.is_read(),
        None => false,
    }
}
