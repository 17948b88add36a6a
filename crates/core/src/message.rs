//! Strict classification of JSON-RPC messages, from raw bytes, into [`Operation`]s.
//!
//! Nothing here ever answers "unknown, let it through": a message is either classified into an
//! operation that the authorizer decides, or refused with a JSON-RPC error that is never forwarded.
//!
//! One rule of DESIGN.md section 4 needs session state and so lives with the session layer: a
//! request whose id is already in flight in its session is refused with -32600 there, using the
//! [`RequestId`] this module reads.

use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::json::{StrictJsonError, parse_strict};
use crate::operation::{CompletionRef, ListKind, Operation, TaskMethod};

/// JSON-RPC and MCP error codes used by mcp-guard.
pub mod codes {
    /// Invalid JSON.
    pub const PARSE_ERROR: i32 = -32700;
    /// Invalid JSON-RPC envelope, duplicate key, or an id already in flight.
    pub const INVALID_REQUEST: i32 = -32600;
    /// Invalid params (`name`/`uri` missing or not a string); also used for `deny_mode = "hide"`.
    pub const INVALID_PARAMS: i32 = -32602;
    /// Routing headers disagree with the body (2026-07-28).
    pub const HEADER_MISMATCH: i32 = -32020;
    /// Permission missing.
    pub const FORBIDDEN: i32 = -31003;
    /// Rate limited.
    pub const RATE_LIMITED: i32 = -31029;
    /// Upstream failed.
    pub const UPSTREAM_FAILED: i32 = -31502;
    /// State store or identity provider unreachable.
    pub const UNAVAILABLE: i32 = -31503;
    /// Upstream timed out.
    pub const UPSTREAM_TIMEOUT: i32 = -31504;
}

/// A JSON-RPC request id: a string or an integer (MCP forbids `null`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RequestId {
    /// An integer id.
    Number(i64),
    /// A string id.
    String(String),
}

impl RequestId {
    /// Reads an id from JSON: a string or an integer, nothing else.
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Some(RequestId::String(s.clone())),
            Value::Number(n) => n.as_i64().map(RequestId::Number),
            _ => None,
        }
    }

    /// The id as JSON text (`7`, `"abc"`), as audit lines show it, without building a `Value`.
    pub fn to_json(&self) -> String {
        match self {
            RequestId::Number(n) => n.to_string(),
            // Serializing a `str` cannot fail; the fallback is never taken.
            RequestId::String(s) => serde_json::to_string(s).unwrap_or_default(),
        }
    }

    /// The id as JSON.
    pub fn to_value(&self) -> Value {
        match self {
            RequestId::Number(n) => Value::from(*n),
            RequestId::String(s) => Value::String(s.clone()),
        }
    }
}

/// A JSON-RPC error to answer with; the refused message is never forwarded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct RpcError {
    /// The JSON-RPC error code.
    pub code: i32,
    /// A short public message (no secrets, no argument values).
    pub message: String,
    /// The id of the refused request when it could be read, else `null` is answered.
    pub id: Option<RequestId>,
}

impl RpcError {
    fn new(code: i32, message: impl Into<String>, id: Option<RequestId>) -> Self {
        RpcError {
            code,
            message: message.into(),
            id,
        }
    }

    /// The JSON-RPC error response object.
    pub fn to_response(&self) -> Value {
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": self.id.as_ref().map_or(Value::Null, RequestId::to_value),
            "error": { "code": self.code, "message": self.message },
        })
    }
}

/// How one message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// Has `method` and `id`: expects an answer.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and `result` or `error`: the client answering a server-to-client request.
    Response,
}

/// One classified JSON-RPC message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Request, notification or response.
    pub kind: MessageKind,
    /// The id, for requests and responses.
    pub id: Option<RequestId>,
    /// The method, for requests and notifications.
    pub method: Option<String>,
    /// What it asks for.
    pub operation: Operation,
}

/// What the bytes of one HTTP body or stdio line held.
#[derive(Clone, Debug, PartialEq)]
pub enum Classified {
    /// One message, or the error that refuses it.
    Single(Result<Message, RpcError>),
    /// A batch: each element classified alone, in order, with its original bytes.
    Batch(Vec<BatchItem>),
}

/// One element of a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchItem {
    /// The element's original bytes, to forward unchanged when allowed.
    pub raw: Box<str>,
    /// The element classified, or the error that refuses it.
    pub message: Result<Message, RpcError>,
}

/// Options of [`classify`].
#[derive(Clone, Copy, Debug)]
pub struct ClassifyOptions {
    /// Accept JSON arrays: only when protocol revision 2025-03-26 was negotiated.
    pub allow_batch: bool,
    /// The most elements a batch may hold.
    pub max_batch: usize,
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        ClassifyOptions {
            allow_batch: false,
            max_batch: 64,
        }
    }
}

/// Classifies the raw bytes of one HTTP body or stdio line.
pub fn classify(bytes: &[u8], options: ClassifyOptions) -> Classified {
    classify_parsed(bytes, parse_strict(bytes), options)
}

/// [`classify`] for a caller that has already parsed `bytes` with [`parse_strict`] (to read
/// something else from the same tree first): `parsed` must be that parse's result.
pub fn classify_parsed(
    bytes: &[u8],
    parsed: Result<Value, StrictJsonError>,
    options: ClassifyOptions,
) -> Classified {
    let value = match parsed {
        Ok(v) => v,
        Err(e) => return Classified::Single(Err(json_error(&e))),
    };
    match value {
        Value::Array(items) => Classified::Batch(match classify_batch(bytes, items, options) {
            Ok(items) => items,
            Err(e) => return Classified::Single(Err(e)),
        }),
        other => Classified::Single(classify_value(other)),
    }
}

fn json_error(e: &StrictJsonError) -> RpcError {
    match e {
        StrictJsonError::Syntax(_) => RpcError::new(codes::PARSE_ERROR, "Parse error", None),
        StrictJsonError::DuplicateKey(_) => RpcError::new(
            codes::INVALID_REQUEST,
            "Invalid Request: duplicate key",
            None,
        ),
    }
}

fn classify_batch(
    bytes: &[u8],
    items: Vec<Value>,
    options: ClassifyOptions,
) -> Result<Vec<BatchItem>, RpcError> {
    if !options.allow_batch {
        return Err(RpcError::new(
            codes::INVALID_REQUEST,
            "Invalid Request: batches are not supported by the negotiated protocol version",
            None,
        ));
    }
    if items.is_empty() {
        return Err(RpcError::new(
            codes::INVALID_REQUEST,
            "Invalid Request: empty batch",
            None,
        ));
    }
    if items.len() > options.max_batch {
        return Err(RpcError::new(
            codes::INVALID_REQUEST,
            format!("Invalid Request: batch larger than {}", options.max_batch),
            None,
        ));
    }
    // The strict parse succeeded, so the plain parse of the same bytes succeeds with the same shape.
    let raws: Vec<&RawValue> = serde_json::from_slice(bytes)
        .map_err(|_| RpcError::new(codes::PARSE_ERROR, "Parse error", None))?;
    Ok(raws
        .into_iter()
        .zip(items)
        .map(|(raw, value)| BatchItem {
            raw: raw.get().into(),
            message: classify_value(value),
        })
        .collect())
}

/// Classifies one already-parsed message (an element of a batch, or a whole body).
pub fn classify_value(value: Value) -> Result<Message, RpcError> {
    let Value::Object(mut obj) = value else {
        return Err(invalid("a message must be a JSON object", None));
    };
    let id = match obj.get("id") {
        None => None,
        Some(v) => match RequestId::from_value(v) {
            Some(id) => Some(id),
            None => return Err(invalid("`id` must be a string or an integer", None)),
        },
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("`jsonrpc` must be \"2.0\"", id));
    }
    let has_result = obj.contains_key("result");
    let has_error = obj.contains_key("error");
    let Some(method) = obj.get("method") else {
        // A response from the client.
        if id.is_none() {
            return Err(invalid("a message needs `method` or `id`", None));
        }
        if has_result == has_error {
            return Err(invalid(
                "a response needs exactly one of `result` and `error`",
                id,
            ));
        }
        if has_error && !obj.get("error").is_some_and(valid_error_object) {
            return Err(invalid(
                "`error` must hold an integer `code` and a string `message`",
                id,
            ));
        }
        return Ok(Message {
            kind: MessageKind::Response,
            id,
            method: None,
            operation: Operation::ClientResponse,
        });
    };
    let Some(method) = method.as_str().map(str::to_owned) else {
        return Err(invalid("`method` must be a string", id));
    };
    if has_result || has_error {
        return Err(invalid("a request cannot hold `result` or `error`", id));
    }
    let params = match obj.remove("params") {
        None => None,
        Some(Value::Object(p)) => Some(p),
        Some(Value::Array(_)) => None,
        Some(_) => return Err(invalid("`params` must be an object or an array", id)),
    };
    let kind = if id.is_some() {
        MessageKind::Request
    } else {
        MessageKind::Notification
    };
    let operation = operation_for(&method, params, &id)?;
    Ok(Message {
        kind,
        id,
        method: Some(method),
        operation,
    })
}

fn valid_error_object(v: &Value) -> bool {
    v.get("code").is_some_and(|c| c.as_i64().is_some())
        && v.get("message").is_some_and(Value::is_string)
}

fn invalid(why: &str, id: Option<RequestId>) -> RpcError {
    RpcError::new(
        codes::INVALID_REQUEST,
        format!("Invalid Request: {why}"),
        id,
    )
}

fn bad_params(why: &str, id: &Option<RequestId>) -> RpcError {
    RpcError::new(
        codes::INVALID_PARAMS,
        format!("Invalid params: {why}"),
        id.clone(),
    )
}

fn string_param(
    params: &Option<Map<String, Value>>,
    key: &str,
    id: &Option<RequestId>,
) -> Result<Arc<str>, RpcError> {
    match params.as_ref().and_then(|p| p.get(key)) {
        Some(Value::String(s)) => Ok(s.as_str().into()),
        Some(_) => Err(bad_params(&format!("`{key}` must be a string"), id)),
        None => Err(bad_params(&format!("`{key}` is required"), id)),
    }
}

fn object_param(
    params: &mut Option<Map<String, Value>>,
    key: &str,
    id: &Option<RequestId>,
) -> Result<Option<Value>, RpcError> {
    match params.as_mut().and_then(|p| p.remove(key)) {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(bad_params(&format!("`{key}` must be an object"), id)),
    }
}

fn operation_for(
    method: &str,
    mut params: Option<Map<String, Value>>,
    id: &Option<RequestId>,
) -> Result<Operation, RpcError> {
    Ok(match method {
        "tools/call" => {
            let name = string_param(&params, "name", id)?;
            let arguments = object_param(&mut params, "arguments", id)?;
            Operation::CallTool { name, arguments }
        }
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            let method = match method {
                "resources/read" => "resources/read",
                "resources/subscribe" => "resources/subscribe",
                _ => "resources/unsubscribe",
            };
            Operation::ReadResource {
                method,
                uri: string_param(&params, "uri", id)?,
            }
        }
        "prompts/get" => {
            let name = string_param(&params, "name", id)?;
            let arguments = object_param(&mut params, "arguments", id)?;
            Operation::GetPrompt { name, arguments }
        }
        "completion/complete" => {
            let reference = params.as_ref().and_then(|p| p.get("ref"));
            let Some(Value::Object(reference)) = reference else {
                return Err(bad_params("`ref` must be an object", id));
            };
            let reference = Some(reference.clone());
            match reference
                .as_ref()
                .and_then(|r| r.get("type"))
                .and_then(Value::as_str)
            {
                Some("ref/prompt") => Operation::Complete(CompletionRef::Prompt(string_param(
                    &reference, "name", id,
                )?)),
                Some("ref/resource") => Operation::Complete(CompletionRef::Resource(string_param(
                    &reference, "uri", id,
                )?)),
                _ => {
                    return Err(bad_params(
                        "`ref.type` must be `ref/prompt` or `ref/resource`",
                        id,
                    ));
                }
            }
        }
        "tools/list" => Operation::List(ListKind::Tools),
        "resources/list" => Operation::List(ListKind::Resources),
        "resources/templates/list" => Operation::List(ListKind::ResourceTemplates),
        "prompts/list" => Operation::List(ListKind::Prompts),
        "initialize" => Operation::Lifecycle("initialize"),
        "ping" => Operation::Lifecycle("ping"),
        "server/discover" => Operation::Lifecycle("server/discover"),
        "tasks/get" | "tasks/result" | "tasks/cancel" => {
            let task_method = match method {
                "tasks/get" => TaskMethod::Get,
                "tasks/result" => TaskMethod::Result,
                _ => TaskMethod::Cancel,
            };
            Operation::Task {
                method: task_method,
                task_id: string_param(&params, "taskId", id)?,
            }
        }
        "tasks/list" => Operation::ListTasks,
        m if m.starts_with("notifications/") => Operation::ClientNotification(m.to_owned()),
        m => Operation::System(m.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::Permission;

    fn one(s: &str) -> Result<Message, RpcError> {
        match classify(s.as_bytes(), ClassifyOptions::default()) {
            Classified::Single(m) => m,
            Classified::Batch(_) => panic!("unexpected batch"),
        }
    }

    fn perm(s: &str) -> Option<String> {
        one(s)
            .unwrap()
            .operation
            .permission()
            .map(|p| p.to_string())
    }

    fn code(s: &str) -> i32 {
        one(s).unwrap_err().code
    }

    #[test]
    fn request_id_json_text_is_the_value_serialized() {
        for id in [
            RequestId::Number(7),
            RequestId::Number(-9_007_199_254_740_993),
            RequestId::String("abc".into()),
            RequestId::String("quote \" back\\slash \u{1} é".into()),
            RequestId::String(String::new()),
        ] {
            assert_eq!(id.to_json(), id.to_value().to_string(), "{id:?}");
        }
    }

    #[test]
    fn every_row_of_the_table() {
        let r =
            |m: &str, p: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{m}","params":{p}}}"#);
        assert_eq!(
            perm(&r("tools/call", r#"{"name":"echo","arguments":{"a":1}}"#)).as_deref(),
            Some("tools:execute:echo")
        );
        let m = one(&r("tools/call", r#"{"name":"echo","arguments":{"a":1}}"#)).unwrap();
        assert_eq!(m.operation.arguments(), Some(&serde_json::json!({"a":1})));
        for method in [
            "resources/read",
            "resources/subscribe",
            "resources/unsubscribe",
        ] {
            assert_eq!(
                perm(&r(method, r#"{"uri":"file:///a:b"}"#)).as_deref(),
                Some("resources:read:file:///a:b")
            );
        }
        assert_eq!(
            perm(&r("prompts/get", r#"{"name":"p"}"#)).as_deref(),
            Some("prompts:read:p")
        );
        assert_eq!(
            perm(&r(
                "completion/complete",
                r#"{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"b"}}"#
            ))
            .as_deref(),
            Some("prompts:read:p")
        );
        assert_eq!(
            perm(&r(
                "completion/complete",
                r#"{"ref":{"type":"ref/resource","uri":"file:///{x}"}}"#
            ))
            .as_deref(),
            Some("resources:read:file:///{x}")
        );
        for (m, k) in [
            ("tools/list", ListKind::Tools),
            ("resources/list", ListKind::Resources),
            ("resources/templates/list", ListKind::ResourceTemplates),
            ("prompts/list", ListKind::Prompts),
        ] {
            let msg = one(&r(m, "{}")).unwrap();
            assert_eq!(msg.operation, Operation::List(k));
            assert_eq!(msg.operation.permission(), None);
        }
        for m in ["initialize", "ping", "server/discover"] {
            assert_eq!(one(&r(m, "{}")).unwrap().operation, Operation::Lifecycle(m));
        }
        let n = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(n.kind, MessageKind::Notification);
        assert_eq!(
            n.operation,
            Operation::ClientNotification("notifications/initialized".into())
        );
        for (m, t) in [
            ("tasks/get", TaskMethod::Get),
            ("tasks/result", TaskMethod::Result),
            ("tasks/cancel", TaskMethod::Cancel),
        ] {
            assert_eq!(
                one(&r(m, r#"{"taskId":"t1"}"#)).unwrap().operation,
                Operation::Task {
                    method: t,
                    task_id: "t1".into()
                }
            );
            assert_eq!(code(&r(m, "{}")), codes::INVALID_PARAMS);
        }
        assert_eq!(
            one(&r("tasks/list", "{}")).unwrap().operation,
            Operation::ListTasks
        );
        let resp = one(r#"{"jsonrpc":"2.0","id":"s1","result":{}}"#).unwrap();
        assert_eq!(
            (resp.kind, resp.operation),
            (MessageKind::Response, Operation::ClientResponse)
        );
        let resp = one(r#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"no"}}"#).unwrap();
        assert_eq!(resp.kind, MessageKind::Response);
        assert_eq!(
            perm(&r("logging/setLevel", r#"{"level":"debug"}"#)).as_deref(),
            Some("system:call:logging/setLevel")
        );
        assert_eq!(
            perm(&r("sampling/createMessage", "{}")).as_deref(),
            Some("system:call:sampling/createMessage")
        );
    }

    #[test]
    fn notifications_of_guarded_methods_are_still_guarded() {
        // A tools/call without an id must not slip past as "just a notification".
        assert_eq!(
            perm(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"rm"}}"#).as_deref(),
            Some("tools:execute:rm")
        );
    }

    #[test]
    fn strict_errors() {
        assert_eq!(code("{"), codes::PARSE_ERROR);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"ping"} {}"#),
            codes::PARSE_ERROR
        );
        assert_eq!(code(r#""hello""#), codes::INVALID_REQUEST);
        assert_eq!(code(r#"{"id":1,"method":"ping"}"#), codes::INVALID_REQUEST);
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            codes::INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            codes::INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
            codes::INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#),
            codes::INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#),
            codes::INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#),
            codes::INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":3}"#),
            codes::INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}"#),
            codes::INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","result":{}}"#),
            codes::INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"error":{"code":"x"}}"#),
            codes::INVALID_REQUEST
        );
        // name/uri missing or not a string.
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#),
            codes::INVALID_PARAMS
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#),
            codes::INVALID_PARAMS
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["rm"]}}"#),
            codes::INVALID_PARAMS
        );
        assert_eq!(
            code(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":[1]}}"#
            ),
            codes::INVALID_PARAMS
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":1}}"#),
            codes::INVALID_PARAMS
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{}}"#),
            codes::INVALID_PARAMS
        );
        assert_eq!(
            code(
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/x"}}}"#
            ),
            codes::INVALID_PARAMS
        );
        assert_eq!(
            code(
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt"}}}"#
            ),
            codes::INVALID_PARAMS
        );
        // The id is echoed when it could be read.
        let e = one(r#"{"jsonrpc":"2.0","id":"a","method":"tools/call"}"#).unwrap_err();
        assert_eq!(e.id, Some(RequestId::String("a".into())));
        assert_eq!(e.to_response()["id"], "a");
    }

    #[test]
    fn duplicate_keys_are_invalid_requests() {
        assert_eq!(
            code(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","name":"rm"}}"#
            ),
            codes::INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping"}"#),
            codes::INVALID_REQUEST
        );
    }

    #[test]
    fn batches() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},
                       {"jsonrpc":"2.0","id":2,"method":"tools/call"},
                       {"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
        // Refused unless 2025-03-26 was negotiated.
        assert!(matches!(
            classify(body.as_bytes(), ClassifyOptions::default()),
            Classified::Single(Err(RpcError {
                code: codes::INVALID_REQUEST,
                ..
            }))
        ));
        let opts = ClassifyOptions {
            allow_batch: true,
            max_batch: 3,
        };
        let Classified::Batch(items) = classify(body.as_bytes(), opts) else {
            panic!("expected a batch")
        };
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[0].message.as_ref().unwrap().operation.permission(),
            Some(Permission::tool("a"))
        );
        assert_eq!(
            &*items[0].raw,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#
        );
        assert_eq!(
            items[1].message.as_ref().unwrap_err().code,
            codes::INVALID_PARAMS
        );
        assert_eq!(
            items[1].message.as_ref().unwrap_err().id,
            Some(RequestId::Number(2))
        );
        assert!(items[2].message.is_ok());
        // Empty and oversized batches are refused whole.
        assert!(matches!(
            classify(b"[]", opts),
            Classified::Single(Err(RpcError {
                code: codes::INVALID_REQUEST,
                ..
            }))
        ));
        let four = format!(
            "[{}]",
            [r#"{"jsonrpc":"2.0","method":"notifications/x"}"#; 4].join(",")
        );
        assert!(matches!(
            classify(four.as_bytes(), opts),
            Classified::Single(Err(RpcError {
                code: codes::INVALID_REQUEST,
                ..
            }))
        ));
        // A duplicate key anywhere in a batch refuses the whole body.
        assert!(matches!(
            classify(
                br#"[{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}]"#,
                opts
            ),
            Classified::Single(Err(RpcError {
                code: codes::INVALID_REQUEST,
                ..
            }))
        ));
        // Non-object elements get their own error.
        let Classified::Batch(items) =
            classify(br#"[1,{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, opts)
        else {
            panic!()
        };
        assert_eq!(
            items[0].message.as_ref().unwrap_err().code,
            codes::INVALID_REQUEST
        );
        assert!(items[1].message.is_ok());
    }
}
