//! Inputs to a decision besides the principal and the operation: time, client facts, attributes from
//! providers (or their failures), upstream tool annotations and session facts.
//!
//! The core has no clock and does no I/O: whoever calls it fills these in.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Facts about the environment of one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Environment {
    /// Seconds since the Unix epoch; `environment.time`, and the source of `weekday` and `hour` (UTC).
    pub now_unix: Option<i64>,
    /// The client IP address as text; `environment.ip`.
    pub client_ip: Option<String>,
    /// The `User-Agent`; `environment.user_agent`.
    pub user_agent: Option<String>,
}

impl Environment {
    /// `environment.hour`, 0 to 23 in UTC.
    pub fn hour(&self) -> Option<i64> {
        self.now_unix.map(|t| t.rem_euclid(86_400) / 3_600)
    }

    /// `environment.weekday`, lowercase English (`monday`...), UTC.
    pub fn weekday(&self) -> Option<&'static str> {
        const DAYS: [&str; 7] = [
            "thursday",
            "friday",
            "saturday",
            "sunday",
            "monday",
            "tuesday",
            "wednesday",
        ];
        // 1970-01-01 was a Thursday.
        self.now_unix
            .map(|t| DAYS[t.div_euclid(86_400).rem_euclid(7) as usize])
    }
}

/// What one attribute provider returned for this principal.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderResult {
    /// The provider answered; attributes are read as `<provider>.<path>`.
    Available(Value),
    /// The provider failed (timeout, error); every attribute under it is unknown.
    Unavailable(String),
}

/// Results of attribute providers, gathered before the core runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProvidedAttributes {
    by_provider: HashMap<String, ProviderResult>,
}

impl ProvidedAttributes {
    /// No provider results.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a provider's answer.
    pub fn insert_available(&mut self, provider: impl Into<String>, value: Value) {
        self.by_provider
            .insert(provider.into(), ProviderResult::Available(value));
    }

    /// Records a provider's failure; it can only take access away.
    pub fn insert_unavailable(&mut self, provider: impl Into<String>, why: impl Into<String>) {
        self.by_provider
            .insert(provider.into(), ProviderResult::Unavailable(why.into()));
    }

    /// The result of one provider, if it ran.
    pub fn get(&self, provider: &str) -> Option<&ProviderResult> {
        self.by_provider.get(provider)
    }

    /// Whether no provider ran.
    pub fn is_empty(&self) -> bool {
        self.by_provider.is_empty()
    }

    /// Whether some provider failed.
    pub fn any_unavailable(&self) -> bool {
        self.by_provider
            .values()
            .any(|r| matches!(r, ProviderResult::Unavailable(_)))
    }
}

/// A synchronous source of attributes for a principal (e.g. a static table already in memory).
///
/// Providers that do I/O run outside the core and record their outcome in [`ProvidedAttributes`].
pub trait AttributeProvider {
    /// The name under which its attributes are read (`<name>.<path>`).
    fn name(&self) -> &str;
    /// The attributes of `subject`, or why they could not be had.
    fn attributes(&self, principal: &crate::Principal) -> Result<Value, String>;
}

impl ProvidedAttributes {
    /// Runs synchronous providers, recording each answer or failure.
    pub fn gather(principal: &crate::Principal, providers: &[&dyn AttributeProvider]) -> Self {
        let mut out = Self::new();
        for p in providers {
            match p.attributes(principal) {
                Ok(v) => out.insert_available(p.name(), v),
                Err(why) => out.insert_unavailable(p.name(), why),
            }
        }
        out
    }
}

/// Tool annotations as the upstream's own `tools/list` reported them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolCatalog {
    annotations: HashMap<String, Map<String, Value>>,
}

impl ToolCatalog {
    /// An empty catalog: annotation groups match nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a `tools/list` result (`{"tools":[...]}`, or a whole JSON-RPC response holding one).
    pub fn from_list_result(value: &Value) -> Self {
        let result = value.get("result").unwrap_or(value);
        let mut annotations = HashMap::new();
        if let Some(tools) = result.get("tools").and_then(Value::as_array) {
            for tool in tools {
                let Some(name) = tool.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let ann = tool
                    .get("annotations")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                annotations.insert(name.to_owned(), ann);
            }
        }
        ToolCatalog { annotations }
    }

    /// Records one tool's annotations.
    pub fn insert(&mut self, tool: impl Into<String>, annotations: Map<String, Value>) {
        self.annotations.insert(tool.into(), annotations);
    }

    /// The annotations of `tool`, if it was listed.
    pub fn get(&self, tool: &str) -> Option<&Map<String, Value>> {
        self.annotations.get(tool)
    }

    /// The tool names it knows, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.annotations.keys().map(String::as_str)
    }

    /// How many tools it knows.
    pub fn len(&self) -> usize {
        self.annotations.len()
    }

    /// Whether it knows no tool.
    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty()
    }
}

/// Facts only the session layer knows; unknown means deny.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionFacts {
    /// For `tasks/get|result|cancel`: whether the task belongs to this principal.
    pub task_owned: Option<bool>,
    /// For a client response: whether its id answers an outstanding server-to-client request.
    pub response_outstanding: Option<bool>,
}

/// Everything besides principal and operation that a decision may read.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// Time, client IP, user agent.
    pub environment: &'a Environment,
    /// Attribute provider results.
    pub attributes: &'a ProvidedAttributes,
    /// Upstream tool annotations, for annotation-defined tool groups.
    pub tools: Option<&'a ToolCatalog>,
    /// Task ownership and outstanding responses.
    pub session: SessionFacts,
}

impl<'a> Context<'a> {
    /// A context with the given environment and attributes, no catalog, no session facts.
    pub fn new(environment: &'a Environment, attributes: &'a ProvidedAttributes) -> Self {
        Context {
            environment,
            attributes,
            tools: None,
            session: SessionFacts::default(),
        }
    }

    /// The same context with tool annotations.
    pub fn with_tools(mut self, tools: &'a ToolCatalog) -> Self {
        self.tools = Some(tools);
        self
    }

    /// The same context with session facts.
    pub fn with_session(mut self, session: SessionFacts) -> Self {
        self.session = session;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provided_attributes_know_whether_any_failed() {
        let mut a = ProvidedAttributes::new();
        assert!(a.is_empty() && !a.any_unavailable());
        a.insert_available("team", Value::Null);
        assert!(!a.is_empty() && !a.any_unavailable());
        a.insert_unavailable("hr", "down");
        assert!(a.any_unavailable());
    }

    #[test]
    fn weekday_and_hour_from_unix_time() {
        // 2026-11-26T03:56:00Z is a Thursday.
        let env = Environment {
            now_unix: Some(1_795_665_360),
            ..Default::default()
        };
        assert_eq!(env.weekday(), Some("thursday"));
        assert_eq!(env.hour(), Some(3));
        let env = Environment {
            now_unix: Some(-1),
            ..Default::default()
        };
        assert_eq!((env.weekday(), env.hour()), (Some("wednesday"), Some(23)));
    }
}
