//! The closed set of MCP methods outrider knows by name.
//!
//! Owns: the `Method` enum, its wire names and its metric label (`_other` for anything not
//! listed, so a client cannot mint label values). Does not own: policy matching, which uses the
//! wire name as sent (`Message::method_str`), so `methods: ["notifications/*"]` also matches
//! methods this list does not know.

/// An MCP method, from every revision outrider understands (2025-03-26 … 2026-07-28).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    // Lifecycle and utilities.
    Initialize,
    Ping,
    ServerDiscover,
    SubscriptionsListen,
    LoggingSetLevel,
    CompletionComplete,
    // Tools, resources, prompts.
    ToolsList,
    ToolsCall,
    ResourcesList,
    ResourcesTemplatesList,
    ResourcesRead,
    ResourcesSubscribe,
    ResourcesUnsubscribe,
    PromptsList,
    PromptsGet,
    // Tasks (2025-11-25).
    TasksGet,
    TasksResult,
    TasksList,
    TasksCancel,
    // Requests a server sends to a client (seen on POST bodies only as the client's responses,
    // but listed so a stream-side classifier can use the same labels).
    SamplingCreateMessage,
    RootsList,
    ElicitationCreate,
    // Notifications.
    NotificationsInitialized,
    NotificationsCancelled,
    NotificationsProgress,
    NotificationsMessage,
    NotificationsResourcesUpdated,
    NotificationsResourcesListChanged,
    NotificationsToolsListChanged,
    NotificationsPromptsListChanged,
    NotificationsRootsListChanged,
    NotificationsElicitationComplete,
    NotificationsTasksStatus,
    /// Any other method; labelled `_other`.
    Other,
}

/// Label for methods outside the closed set (and the `mcp_tool` overflow label, SPEC §8).
pub const OTHER_LABEL: &str = "_other";

const TABLE: &[(Method, &str)] = &[
    (Method::Initialize, "initialize"),
    (Method::Ping, "ping"),
    (Method::ServerDiscover, "server/discover"),
    (Method::SubscriptionsListen, "subscriptions/listen"),
    (Method::LoggingSetLevel, "logging/setLevel"),
    (Method::CompletionComplete, "completion/complete"),
    (Method::ToolsList, "tools/list"),
    (Method::ToolsCall, "tools/call"),
    (Method::ResourcesList, "resources/list"),
    (Method::ResourcesTemplatesList, "resources/templates/list"),
    (Method::ResourcesRead, "resources/read"),
    (Method::ResourcesSubscribe, "resources/subscribe"),
    (Method::ResourcesUnsubscribe, "resources/unsubscribe"),
    (Method::PromptsList, "prompts/list"),
    (Method::PromptsGet, "prompts/get"),
    (Method::TasksGet, "tasks/get"),
    (Method::TasksResult, "tasks/result"),
    (Method::TasksList, "tasks/list"),
    (Method::TasksCancel, "tasks/cancel"),
    (Method::SamplingCreateMessage, "sampling/createMessage"),
    (Method::RootsList, "roots/list"),
    (Method::ElicitationCreate, "elicitation/create"),
    (
        Method::NotificationsInitialized,
        "notifications/initialized",
    ),
    (Method::NotificationsCancelled, "notifications/cancelled"),
    (Method::NotificationsProgress, "notifications/progress"),
    (Method::NotificationsMessage, "notifications/message"),
    (
        Method::NotificationsResourcesUpdated,
        "notifications/resources/updated",
    ),
    (
        Method::NotificationsResourcesListChanged,
        "notifications/resources/list_changed",
    ),
    (
        Method::NotificationsToolsListChanged,
        "notifications/tools/list_changed",
    ),
    (
        Method::NotificationsPromptsListChanged,
        "notifications/prompts/list_changed",
    ),
    (
        Method::NotificationsRootsListChanged,
        "notifications/roots/list_changed",
    ),
    (
        Method::NotificationsElicitationComplete,
        "notifications/elicitation/complete",
    ),
    (
        Method::NotificationsTasksStatus,
        "notifications/tasks/status",
    ),
];

impl Method {
    /// Every known method (all but `Other`), for tests and docs.
    pub fn all() -> impl Iterator<Item = Method> {
        TABLE.iter().map(|(m, _)| *m)
    }

    /// The method for a wire name; exact, case-sensitive (JSON-RPC method names are).
    pub fn from_wire(name: &str) -> Method {
        TABLE
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(Method::Other, |(m, _)| *m)
    }

    /// The wire name, or `None` for `Other` (whose name only the message knows).
    pub fn wire_name(self) -> Option<&'static str> {
        TABLE.iter().find(|(m, _)| *m == self).map(|(_, n)| *n)
    }

    /// Metric label value: the wire name, or `_other`. Always from a closed set.
    pub fn label(self) -> &'static str {
        self.wire_name().unwrap_or(OTHER_LABEL)
    }

    /// Whether the method names a tool, resource or prompt (SPEC §7: the ones `tools`
    /// constrains), and which params field carries the name.
    pub fn name_field(self) -> Option<NameField> {
        match self {
            Method::ToolsCall | Method::PromptsGet => Some(NameField::Name),
            Method::ResourcesRead => Some(NameField::Uri),
            _ => None,
        }
    }

    /// SPEC §7's list of methods that are always safe to retry.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Method::ToolsList
                | Method::ResourcesList
                | Method::ResourcesRead
                | Method::PromptsList
                | Method::PromptsGet
                | Method::ServerDiscover
                | Method::Ping
        )
    }
}

/// Which `params` field names the target of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameField {
    /// `params.name` (`tools/call`, `prompts/get`).
    Name,
    /// `params.uri` (`resources/read`).
    Uri,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for m in Method::all() {
            let name = m.wire_name().unwrap();
            assert!(seen.insert(name), "duplicate {name}");
            assert_eq!(Method::from_wire(name), m);
            assert_eq!(m.label(), name);
        }
        assert_eq!(Method::Other.wire_name(), None);
        assert_eq!(Method::Other.label(), "_other");
        assert_eq!(Method::from_wire("Tools/Call"), Method::Other);
        assert_eq!(Method::from_wire(""), Method::Other);
    }

    #[test]
    fn name_fields() {
        assert_eq!(Method::ToolsCall.name_field(), Some(NameField::Name));
        assert_eq!(Method::PromptsGet.name_field(), Some(NameField::Name));
        assert_eq!(Method::ResourcesRead.name_field(), Some(NameField::Uri));
        let naming = Method::all().filter(|m| m.name_field().is_some()).count();
        assert_eq!(naming, 3);
    }
}
