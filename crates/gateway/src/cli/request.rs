//! Builds a principal and a request from command-line or test-case input, and decides it the way
//! the gateway would: the request goes through the same strict classification.

use mcp_guard_core::{
    AuthMethod, Classified, ClassifyOptions, Context, Decision, Environment, ListKind, Operation,
    Principal, ProvidedAttributes, ToolCatalog, classify,
};
use serde_json::{Map, Value, json};

use crate::config::Config;

/// Everything needed to decide one request.
#[derive(Debug, Default)]
pub(crate) struct RequestInput {
    pub subject: String,
    pub issuer: Option<String>,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub scopes: Vec<String>,
    /// Attribute roots (`subject`, `environment`, provider names) to JSON objects.
    pub attributes: Map<String, Value>,
    pub unavailable: Vec<String>,
    pub method: String,
    pub name: Option<String>,
    pub uri: Option<String>,
    pub arguments: Map<String, Value>,
    pub catalog: Option<ToolCatalog>,
    /// Seconds since the epoch, when `environment.time` is not given.
    pub now_unix: Option<i64>,
}

/// The outcome of deciding one request.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub decision: Decision,
    /// Role names and where they came from.
    pub roles: Vec<(String, &'static str)>,
    /// For `tools/list` with annotations: visible and hidden tool names.
    pub listing: Option<(Vec<String>, Vec<String>)>,
}

/// Sets `root.a.b = value` for a dotted path, creating objects on the way.
pub(crate) fn set_path(
    attributes: &mut Map<String, Value>,
    path: &str,
    value: Value,
) -> Result<(), String> {
    let mut parts = path.split('.');
    let root = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    match root {
        "resource" | "action" => {
            return Err(format!(
                "`{path}` comes from the request; use --method, --name, --uri and --arg"
            ));
        }
        "environment" if rest.len() != 1 || !matches!(rest[0], "time" | "ip" | "user_agent") => {
            return Err(format!(
                "`{path}`: settable environment attributes are `environment.time` (Unix seconds), `environment.ip` and `environment.user_agent`; weekday and hour follow from time"
            ));
        }
        "" => return Err("an attribute path is empty".into()),
        _ if rest.is_empty() => return Err(format!("`{path}`: name a field under `{root}`")),
        _ => {}
    }
    let mut node = attributes
        .entry(root.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    for (i, seg) in rest.iter().enumerate() {
        if seg.is_empty() {
            return Err(format!("`{path}` has an empty segment"));
        }
        let Value::Object(map) = node else {
            return Err(format!(
                "`{path}` goes through a value that is not an object"
            ));
        };
        if i == rest.len() - 1 {
            map.insert((*seg).to_owned(), value);
            return Ok(());
        }
        node = map
            .entry((*seg).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(())
}

/// Parses `KEY=JSON`; a value that is not valid JSON is taken as a string.
pub(crate) fn parse_assignment(text: &str) -> Result<(String, Value), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("`{text}` is not KEY=VALUE"));
    };
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.trim().to_owned(), value))
}

/// Decides the request against the configuration.
pub(crate) fn decide(config: &Config, input: &RequestInput) -> Result<Outcome, String> {
    let mut principal =
        Principal::new(input.issuer.clone(), input.subject.clone(), AuthMethod::Cli);
    principal.roles = input.roles.clone();
    principal.permissions = input.permissions.clone();
    principal.scopes = input.scopes.clone();
    let mut environment = Environment {
        now_unix: input.now_unix,
        ..Environment::default()
    };
    let mut provided = ProvidedAttributes::new();
    for (root, value) in &input.attributes {
        match root.as_str() {
            "subject" => {
                if let Value::Object(m) = value {
                    principal.attributes.extend(m.clone());
                }
            }
            "environment" => {
                if let Some(t) = value.get("time") {
                    environment.now_unix = Some(
                        t.as_i64()
                            .ok_or("`environment.time` must be an integer (Unix seconds)")?,
                    );
                }
                environment.client_ip = value.get("ip").and_then(Value::as_str).map(str::to_owned);
                environment.user_agent = value
                    .get("user_agent")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            "resource" | "action" => {
                return Err(format!("`{root}` attributes come from the request"));
            }
            provider => provided.insert_available(provider, value.clone()),
        }
    }
    for p in &input.unavailable {
        provided.insert_unavailable(p.clone(), "marked unavailable");
    }

    let operation = classify_request(input)?;
    let authorizer = &config.authorizer;
    let subject = authorizer.resolve(principal);
    let mut ctx = Context::new(&environment, &provided);
    if let Some(c) = &input.catalog {
        ctx = ctx.with_tools(c);
    }
    let decision = authorizer.explain(&subject, &operation, &ctx);
    let listing = match (&operation, &input.catalog) {
        (Operation::List(ListKind::Tools), Some(catalog)) => {
            let mut visible = Vec::new();
            let mut hidden = Vec::new();
            let mut names: Vec<&str> = catalog.names().collect();
            names.sort_unstable();
            for name in names {
                if authorizer.item_visible(&subject, ListKind::Tools, name, &ctx) {
                    visible.push(name.to_owned());
                } else {
                    hidden.push(name.to_owned());
                }
            }
            Some((visible, hidden))
        }
        _ => None,
    };
    let roles = subject
        .roles()
        .map(|(n, o)| (n.to_owned(), o.as_str()))
        .collect();
    Ok(Outcome {
        decision,
        roles,
        listing,
    })
}

fn classify_request(input: &RequestInput) -> Result<Operation, String> {
    let mut params = Map::new();
    match input.method.as_str() {
        "completion/complete" => {
            let reference = match (&input.name, &input.uri) {
                (Some(n), _) => json!({"type": "ref/prompt", "name": n}),
                (None, Some(u)) => json!({"type": "ref/resource", "uri": u}),
                (None, None) => json!({}),
            };
            params.insert("ref".into(), reference);
        }
        m if m.starts_with("tasks/") => {
            if let Some(n) = &input.name {
                params.insert("taskId".into(), Value::String(n.clone()));
            }
        }
        _ => {
            if let Some(n) = &input.name {
                params.insert("name".into(), Value::String(n.clone()));
            }
            if let Some(u) = &input.uri {
                params.insert("uri".into(), Value::String(u.clone()));
            }
            if !input.arguments.is_empty() {
                params.insert("arguments".into(), Value::Object(input.arguments.clone()));
            }
        }
    }
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": input.method, "params": params});
    let bytes = serde_json::to_vec(&message).map_err(|e| e.to_string())?;
    match classify(&bytes, ClassifyOptions::default()) {
        Classified::Single(Ok(m)) => Ok(m.operation),
        Classified::Single(Err(e)) => Err(format!(
            "the gateway would refuse this request: {} ({})",
            e.message, e.code
        )),
        Classified::Batch(_) => Err("unexpected batch".into()),
    }
}
