//! Protocol revision 2026-07-28: requests carry their own protocol version in
//! `params._meta` and mirror their routing in headers (`MCP-Protocol-Version`, `Mcp-Method`,
//! `Mcp-Name`). The gateway decides on the body; a header that disagrees with it, or a required
//! one that is missing, is refused with 400 and -32020, so that nothing downstream can be steered
//! by a header the policy never saw.

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// The stateless revision.
pub const MODERN: &str = "2026-07-28";
/// The `_meta` key holding a request's protocol revision.
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

const PROTOCOL_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";

/// Which protocol family a POST belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Era {
    /// Up to 2025-11-25: `initialize`, sessions.
    Legacy,
    /// 2026-07-28 and later: stateless, this revision.
    Modern(String),
}

/// Why the routing headers were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// -32020: a header disagrees with the body, is missing, repeated or malformed.
    #[error("Header mismatch: {0}")]
    Mismatch(String),
    /// -32602: the body lacks the per-request protocol fields the header announces.
    #[error("Invalid params: {0}")]
    MissingMeta(&'static str),
}

/// What the check reads of a message, borrowed from its parse. A JSON `null` counts as absent.
struct Probe<'a> {
    id: Option<&'a Value>,
    method: Option<&'a Value>,
    params: Option<&'a Map<String, Value>>,
    version: Option<&'a Value>,
}

/// A member's value, `null` counting as absent.
fn member<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

impl<'a> Probe<'a> {
    /// `None` for anything but an object whose `params` and `params._meta`, when present, are
    /// objects too: such a body is no 2026-07-28 request (arrays are legacy batches).
    fn of(message: &'a Value) -> Option<Self> {
        let object = message.as_object()?;
        let params = match member(object, "params") {
            None => None,
            Some(Value::Object(p)) => Some(p),
            Some(_) => return None,
        };
        let meta = match params.and_then(|p| member(p, "_meta")) {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return None,
        };
        Some(Probe {
            id: member(object, "id"),
            method: member(object, "method"),
            params,
            version: meta.and_then(|m| member(m, META_VERSION)),
        })
    }
}

/// Reads the era of a single-message body and checks its routing headers against it. `message`
/// is the body's strict parse (so duplicate keys cannot make this read differ from the policy's),
/// `None` when it did not parse, which the classification then refuses.
pub fn check(headers: &HeaderMap, message: Option<&Value>) -> Result<Era, RoutingError> {
    let Some(probe) = message.and_then(Probe::of) else {
        return Ok(Era::Legacy);
    };
    let header_version = single(headers, PROTOCOL_HEADER)?;
    let meta_version = match probe.version {
        None => None,
        Some(Value::String(v)) => Some(v.as_str()),
        Some(_) => {
            return Err(RoutingError::MissingMeta(
                "`_meta` protocol version is not a string",
            ));
        }
    };
    let version = match (meta_version, header_version.as_deref()) {
        (None, None) => return Ok(Era::Legacy),
        (None, Some(h)) if h < MODERN => return Ok(Era::Legacy),
        (None, Some(_)) => {
            if probe.method.is_some() && probe.id.is_some() {
                return Err(RoutingError::MissingMeta(
                    "the request has no `_meta` protocol version",
                ));
            }
            // A notification: this revision defines no header rules for it.
            return Ok(Era::Modern(header_version.unwrap_or_default()));
        }
        (Some(m), None) => {
            return Err(RoutingError::Mismatch(format!(
                "MCP-Protocol-Version is missing (the body says {m})"
            )));
        }
        (Some(m), Some(h)) if m != h => {
            return Err(RoutingError::Mismatch(format!(
                "MCP-Protocol-Version `{h}` differs from the body's `{m}`"
            )));
        }
        (Some(m), Some(_)) => m.to_owned(),
    };
    if version.as_str() < MODERN {
        return Ok(Era::Legacy);
    }
    if probe.id.is_none() {
        return Ok(Era::Modern(version));
    }
    let method = probe.method.and_then(Value::as_str).unwrap_or("");
    match single(headers, METHOD_HEADER)? {
        Some(h) if h == method => {}
        Some(h) => {
            return Err(RoutingError::Mismatch(format!(
                "Mcp-Method `{h}` differs from the body's method"
            )));
        }
        None => return Err(RoutingError::Mismatch("Mcp-Method is missing".into())),
    }
    let named_by = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    };
    let named = named_by.and_then(|key| probe.params.and_then(|p| member(p, key)));
    if let Some(name) = named {
        let name = name.as_str().unwrap_or_default();
        match single(headers, NAME_HEADER)? {
            Some(h) if decode(&h)? == name => {}
            Some(_) => {
                return Err(RoutingError::Mismatch(
                    "Mcp-Name differs from the body".into(),
                ));
            }
            None => return Err(RoutingError::Mismatch("Mcp-Name is missing".into())),
        }
    }
    Ok(Era::Modern(version))
}

/// The one value of a header; repeated or non-UTF-8 values are refused.
fn single(headers: &HeaderMap, name: &str) -> Result<Option<String>, RoutingError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(RoutingError::Mismatch(format!("{name} is repeated")));
    }
    first
        .to_str()
        .map(|s| Some(s.to_owned()))
        .map_err(|_| RoutingError::Mismatch(format!("{name} is not valid text")))
}

/// Decodes `=?base64?...?=` (how non-ASCII and edge-whitespace values travel); other values are
/// taken as they are.
fn decode(value: &str) -> Result<String, RoutingError> {
    let Some(inner) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Ok(value.to_owned());
    };
    STANDARD
        .decode(inner)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| RoutingError::Mismatch("a base64 header value does not decode".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check on a body, parsed as the gateway parses it.
    fn check(headers: &HeaderMap, body: &[u8]) -> Result<Era, RoutingError> {
        let parsed = mcp_guard_core::parse_strict(body).ok();
        super::check(headers, parsed.as_ref())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

    #[test]
    fn legacy_bodies_need_no_routing_headers() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#;
        assert_eq!(check(&HeaderMap::new(), body), Ok(Era::Legacy));
        assert_eq!(
            check(&headers(&[("mcp-protocol-version", "2025-11-25")]), body),
            Ok(Era::Legacy)
        );
    }

    #[test]
    fn matching_headers_pass() {
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ]);
        assert_eq!(
            check(&h, CALL.as_bytes()),
            Ok(Era::Modern("2026-07-28".into()))
        );
        let encoded = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZWNobw==?="),
        ]);
        assert!(check(&encoded, CALL.as_bytes()).is_ok());
    }

    #[test]
    fn a_header_that_names_another_tool_is_refused() {
        for bad in [
            vec![
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "delete_file"),
            ],
            vec![
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
                ("mcp-name", "echo"),
            ],
            vec![
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
            ],
            vec![("mcp-method", "tools/call"), ("mcp-name", "echo")],
            vec![
                ("mcp-protocol-version", "2025-11-25"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ],
            vec![
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
                ("mcp-name", "delete_file"),
            ],
            vec![
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?!!?="),
            ],
        ] {
            let r = check(&headers(&bad), CALL.as_bytes());
            assert!(
                matches!(r, Err(RoutingError::Mismatch(_))),
                "{bad:?}: {r:?}"
            );
        }
    }

    #[test]
    fn a_modern_header_without_meta_is_invalid_params() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ]);
        assert!(matches!(check(&h, body), Err(RoutingError::MissingMeta(_))));
    }

    #[test]
    fn bodies_that_are_no_single_request_object_are_legacy() {
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ]);
        let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}"#;
        for body in [
            format!("[{CALL},{CALL}]"),
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["echo",{{{meta}}}]}}"#),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":"x"}}"#
                .to_owned(),
            "not json".to_owned(),
            // Duplicate keys: the strict parse refuses it, so the classification answers it.
            format!(r#"{{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{{"name":"echo",{meta}}}}}"#),
        ] {
            assert_eq!(check(&h, body.as_bytes()), Ok(Era::Legacy), "{body}");
        }
    }

    #[test]
    fn null_members_count_as_absent() {
        let version = headers(&[("mcp-protocol-version", "2026-07-28")]);
        // `"id": null` is no id: a notification, which has no header rules.
        let body = br#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert_eq!(check(&version, body), Ok(Era::Modern("2026-07-28".into())));
        // A `null` version is no version: the request lacks it.
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":null}}}"#;
        assert!(matches!(
            check(&version, body),
            Err(RoutingError::MissingMeta(_))
        ));
        // A `null` name with a header naming a tool is not a match for anything to check.
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
        ]);
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert_eq!(check(&h, body), Ok(Era::Modern("2026-07-28".into())));
    }
}
