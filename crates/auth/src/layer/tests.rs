//! The layer in front of a mock inner service that records every request it gets.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use mcp_guard_core::{Authorizer, AuthorizerBuilder, Decision, Pattern, Principal, Verdict};
use serde_json::{Value, json};
use tower_layer::Layer as _;
use tower_service::Service as _;

use super::{AuthLayer, BuildError};
use crate::audit::{AuditEvent, MemorySink};
use crate::token::{Algorithm, IssuerPolicy, KeySet, SigningKey, Verifier};

const ISS: &str = "https://idp.example";
const AUD: &str = "https://mcp.example/mcp";
const PRM: &str = "https://mcp.example/.well-known/oauth-protected-resource/mcp";

/// What the inner service saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    body: String,
    session: Option<String>,
    principal: Option<String>,
    decision: Option<Verdict>,
    length: Option<usize>,
    authorization: bool,
}

type Answer = Arc<dyn Fn(&str) -> Response<Body> + Send + Sync>;

#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Answer,
}

impl tower_service::Service<Request<Body>> for Recorder {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let body = String::from_utf8(body.to_vec()).unwrap();
            this.seen.lock().unwrap().push(Seen {
                body: body.clone(),
                session: parts
                    .headers
                    .get("mcp-session-id")
                    .map(|v| v.to_str().unwrap().to_owned()),
                principal: parts
                    .extensions
                    .get::<Principal>()
                    .map(|p| p.subject.clone()),
                decision: parts.extensions.get::<Decision>().map(|d| d.verdict),
                authorization: parts.headers.contains_key(header::AUTHORIZATION),
                length: parts
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .map(|v| v.to_str().unwrap().parse().unwrap()),
            });
            Ok((this.answer)(&body))
        })
    }
}

fn key() -> SigningKey {
    SigningKey::hs256("k1", &[7u8; 32]).unwrap()
}

fn token(sub: &str, roles: &[&str]) -> String {
    let exp = crate::audit::now_millis() / 1000 + 300;
    crate::danger::sign_with(
        &key(),
        &json!({"alg": "HS256", "kid": "k1", "typ": "at+jwt"}),
        &json!({"iss": ISS, "sub": sub, "aud": AUD, "exp": exp, "roles": roles}),
    )
    .unwrap()
}

struct Harness {
    service: super::AuthService<Recorder>,
    seen: Arc<Mutex<Vec<Seen>>>,
    audit: Arc<MemorySink>,
}

fn harness(answer: impl Fn(&str) -> Response<Body> + Send + Sync + 'static) -> Harness {
    let mut keys = KeySet::new();
    keys.insert(key().verify_key().clone());
    let verifier = Verifier::new(vec![IssuerPolicy {
        issuer: ISS.into(),
        own: false,
        audiences: vec![AUD.into()],
        algorithms: vec![Algorithm::HS256],
        keys,
        required_typ: None,
        roles_claim: "roles".into(),
    }]);
    let p = |s: &str| Pattern::parse(s).unwrap();
    let authorizer = AuthorizerBuilder::new()
        .role(
            "reader",
            vec![p("tools:execute:echo"), p("tools:execute:whoami")],
        )
        .scope("mcp:tools", vec![p("tools:execute:*")])
        .build()
        .unwrap();
    let audit = Arc::new(MemorySink::new());
    let layer = AuthLayer::builder()
        .authenticator(verifier)
        .authorizer(authorizer)
        .resource_metadata(PRM)
        .audit(audit.clone())
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let service = layer.layer(Recorder {
        seen: seen.clone(),
        answer: Arc::new(answer),
    });
    Harness {
        service,
        seen,
        audit,
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

impl Harness {
    async fn send(&mut self, req: Request<Body>) -> Reply {
        let r = self.service.call(req).await.unwrap();
        let (parts, body) = r.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn post(&mut self, token: Option<&str>, session: Option<&str>, body: &str) -> Reply {
        let mut b = Request::post("/mcp")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(s) = session {
            b = b.header("mcp-session-id", s);
        }
        self.send(b.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn events(&self, name: &str) -> Vec<AuditEvent> {
        self.audit
            .events()
            .into_iter()
            .filter(|e| e.event == name)
            .collect()
    }
}

fn json_answer(v: Value) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

/// Answers every request with `result: {"ok": true}` under its id (a batch with an array).
fn echo_ok(body: &str) -> Response<Body> {
    if body.is_empty() {
        return Response::new(Body::empty());
    }
    let v: Value = serde_json::from_str(body).unwrap();
    let answer = |m: &Value| json!({"jsonrpc": "2.0", "id": m["id"], "result": {"ok": true}});
    match v {
        Value::Array(items) => json_answer(Value::Array(
            items
                .iter()
                .filter(|m| m.get("id").is_some())
                .map(answer)
                .collect(),
        )),
        m => json_answer(answer(&m)),
    }
}

fn call(id: i64, tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
        .to_string()
}

const TOOLS: &str = r#"{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"deploy","inputSchema":{"type":"object"}},{"name":"whoami","inputSchema":{"type":"object"}}]}"#;

#[test]
fn building_without_an_authenticator_or_authorizer_is_an_error() {
    let authorizer = || AuthorizerBuilder::new().build().unwrap();
    let verifier = || Verifier::new(Vec::new());
    assert_eq!(
        AuthLayer::builder()
            .authorizer(authorizer())
            .resource_metadata(PRM)
            .build()
            .err(),
        Some(BuildError::MissingAuthenticator)
    );
    assert_eq!(
        AuthLayer::builder()
            .authenticator(verifier())
            .resource_metadata(PRM)
            .build()
            .err(),
        Some(BuildError::MissingAuthorizer)
    );
    assert_eq!(
        AuthLayer::builder()
            .authenticator(verifier())
            .authorizer(authorizer())
            .build()
            .err(),
        Some(BuildError::MissingResourceMetadata)
    );
    assert!(matches!(
        AuthLayer::builder()
            .authenticator(verifier())
            .authorizer(authorizer())
            .resource_metadata("/relative")
            .build(),
        Err(BuildError::InvalidResourceMetadata(_))
    ));
}

#[tokio::test]
async fn no_token_or_a_bad_one_gets_401_with_the_challenge_and_never_reaches_the_service() {
    let mut h = harness(echo_ok);
    let r = h.post(None, None, &call(1, "echo")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Bearer resource_metadata=\"{PRM}\", scope=\"mcp:tools\"").as_str())
    );

    let r = h.post(Some("not.a.jwt"), None, &call(1, "echo")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!(
                "Bearer error=\"invalid_token\", resource_metadata=\"{PRM}\", scope=\"mcp:tools\""
            )
            .as_str()
        )
    );
    let failures = h.events("authn_failed");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].credential.is_some());

    // The scheme is case-insensitive; two Authorization headers are refused.
    let t = token("alice", &["reader"]);
    let two = Request::post("/mcp")
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .body(Body::from(call(1, "echo")))
        .unwrap();
    let r = h.send(two).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );

    // A token in the query string is not a credential.
    let q = Request::post(format!("/mcp?access_token={t}"))
        .body(Body::from(call(1, "echo")))
        .unwrap();
    let r = h.send(q).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.header("www-authenticate").unwrap().contains("error="));
    assert!(
        h.events("authn_failed")
            .iter()
            .any(|e| e.reason.as_deref() == Some("a token in the query string is not accepted"))
    );
    assert!(h.seen().is_empty(), "nothing reached the inner service");

    let lower = Request::post("/mcp")
        .header(header::AUTHORIZATION, format!("bearer {t}"))
        .body(Body::from(call(1, "echo")))
        .unwrap();
    assert_eq!(h.send(lower).await.status, StatusCode::OK);
    assert_eq!(h.seen().len(), 1);
}

#[tokio::test]
async fn a_forbidden_call_gets_403_per_section_8_and_never_reaches_the_service() {
    let mut h = harness(echo_ok);
    let alice = token("alice", &["reader"]);
    let r = h.post(Some(&alice), None, &call(7, "deploy")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!(
                "Bearer error=\"insufficient_scope\", resource_metadata=\"{PRM}\", scope=\"mcp:tools\""
            )
            .as_str()
        )
    );
    assert_eq!(
        r.json(),
        json!({"jsonrpc": "2.0", "id": 7, "error": {"code": -31003,
            "message": "Forbidden: missing permission tools:execute:deploy"}})
    );
    assert!(
        h.seen().is_empty(),
        "the denied request reached the inner service"
    );
    let d = h.events("decision");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].outcome, Some("deny"));
    assert_eq!(d[0].subject.as_deref(), Some("alice"));
    assert_eq!(d[0].permission.as_deref(), Some("tools:execute:deploy"));
    assert_eq!(d[0].target.as_deref(), Some("deploy"));

    // A notification of a guarded method is guarded too, and refused just the same.
    let n = r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"deploy"}}"#;
    assert_eq!(
        h.post(Some(&alice), None, n).await.status,
        StatusCode::FORBIDDEN
    );
    // A body the strict parse refuses is never forwarded either.
    let dup = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"deploy"}}"#;
    let r = h.post(Some(&alice), None, dup).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], -32600);
    assert_eq!(
        h.post(Some(&alice), None, "{").await.json()["error"]["code"],
        -32700
    );
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn an_allowed_call_carries_the_principal_and_decision_in_extensions() {
    let mut h = harness(echo_ok);
    let alice = token("alice", &["reader"]);
    let body = call(3, "echo");
    let r = h.post(Some(&alice), None, &body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["result"]["ok"], true);
    let seen = h.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, body, "the original bytes are forwarded");
    assert_eq!(seen[0].principal.as_deref(), Some("alice"));
    assert_eq!(seen[0].decision, Some(Verdict::Allow));
    assert!(
        !seen[0].authorization,
        "the client's token is not passed on"
    );
    let d = h.events("decision");
    assert_eq!(d[0].outcome, Some("allow"));
    assert_eq!(d[0].reason_kind, Some("granted"));
}

#[tokio::test]
async fn a_batch_forwards_only_its_permitted_elements_and_answers_the_denied_one() {
    let mut h = harness(echo_ok);
    let alice = token("alice", &["reader"]);
    let allowed = call(1, "echo");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let body = format!("[{allowed},{},{note}]", call(2, "deploy"));
    let r = h.post(Some(&alice), None, &body).await;
    assert_eq!(r.status, StatusCode::OK);
    let answers = r.json();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[0]["result"]["ok"], true);
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(answers[1]["error"]["code"], -31003);
    assert_eq!(
        answers[1]["error"]["message"],
        "Forbidden: missing permission tools:execute:deploy"
    );
    let seen = h.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, format!("[{allowed},{note}]"));
    assert_eq!(seen[0].length, Some(seen[0].body.len()));
    assert!(!seen[0].body.contains("deploy"));

    // Every element denied: answered without the inner service.
    let body = format!("[{},{}]", call(4, "deploy"), call(5, "rm"));
    let r = h.post(Some(&alice), None, &body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    assert_eq!(h.seen().len(), 1);
}

#[tokio::test]
async fn json_list_results_are_filtered() {
    let mut h = harness(|body| {
        let v: Value = serde_json::from_str(body).unwrap();
        json_answer(json!({"jsonrpc": "2.0", "id": v["id"],
            "result": serde_json::from_str::<Value>(TOOLS).unwrap()}))
    });
    let alice = token("alice", &["reader"]);
    let r = h
        .post(
            Some(&alice),
            None,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let names: Vec<&str> = r.json()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .leak()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["echo", "whoami"]);
    let lists = h.events("list");
    assert_eq!(lists.len(), 1);
    assert_eq!((lists[0].shown, lists[0].hidden), (Some(2), Some(1)));
    // The admin-like token with every tool sees all three.
    let h2 = h
        .post(
            Some(&token("root", &["admin"])),
            None,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        )
        .await;
    assert_eq!(h2.json()["result"]["tools"].as_array().unwrap().len(), 3);
}

/// A body delivered in the given chunks.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[tokio::test]
async fn sse_list_results_are_filtered_event_by_event() {
    let mut h = harness(|body| {
        let v: Value = serde_json::from_str(body).unwrap();
        let reply = json!({"jsonrpc": "2.0", "id": v["id"],
            "result": serde_json::from_str::<Value>(TOOLS).unwrap()})
        .to_string();
        let (a, b) = reply.split_at(reply.len() / 2);
        let chunks = [
            "id: 0\nretry: 3000\ndata:\n\n".to_owned(),
            "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"deploy\"}}\n\n".to_owned(),
            format!("event: message\r\nid: 2\r\ndata: {a}"),
            format!("{b}\r\n\r\n"),
        ];
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::new(Chunks(
                chunks.into_iter().map(Bytes::from).collect(),
            )))
            .unwrap()
    });
    let alice = token("alice", &["reader"]);
    let r = h
        .post(
            Some(&alice),
            None,
            r#"{"jsonrpc":"2.0","id":"l","method":"tools/list"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body
            .starts_with("id: 0\nretry: 3000\ndata:\n\nevent: message\nid: 1\n"),
        "{}",
        r.body
    );
    let last = r
        .body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .last()
        .unwrap();
    assert!(last.starts_with("event: message\nid: 2\ndata: "), "{last}");
    let data: Value = serde_json::from_str(last.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(data["id"], "l");
    let names: Vec<&str> = data["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "whoami"]);
    assert!(!last.contains("deploy"));
    assert_eq!(h.events("list")[0].hidden, Some(1));
}

#[tokio::test]
async fn a_session_is_bound_to_the_principal_that_opened_it() {
    let mut h = harness(|body| {
        let mut r = echo_ok(body);
        if body.contains("\"initialize\"") {
            r.headers_mut()
                .insert("mcp-session-id", header::HeaderValue::from_static("sess-1"));
        }
        r
    });
    let alice = token("alice", &["reader"]);
    let bob = token("bob", &["reader"]);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = h.post(Some(&alice), None, init).await;
    assert_eq!(r.header("mcp-session-id"), Some("sess-1"));
    assert_eq!(h.seen().len(), 1);

    let r = h.post(Some(&bob), Some("sess-1"), &call(2, "echo")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(h.seen().len(), 1, "bob's request never reached the service");
    let refused = h.events("session_refused");
    assert_eq!(refused[0].subject.as_deref(), Some("bob"));
    assert_eq!(
        refused[0].reason.as_deref(),
        Some("the session belongs to another principal")
    );

    let r = h.post(Some(&bob), Some("made-up"), &call(2, "echo")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = h.post(Some(&alice), Some("sess-1"), &call(2, "echo")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(h.seen()[1].session.as_deref(), Some("sess-1"));

    // GET and DELETE are checked the same way; after DELETE the id is gone.
    let get = |t: &str| {
        Request::get("/mcp")
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .header("mcp-session-id", "sess-1")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(h.send(get(&bob)).await.status, StatusCode::NOT_FOUND);
    let delete = Request::delete("/mcp")
        .header(header::AUTHORIZATION, format!("Bearer {alice}"))
        .header("mcp-session-id", "sess-1")
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(delete).await.status, StatusCode::OK);
    assert_eq!(h.seen().len(), 3);
    let r = h.post(Some(&alice), Some("sess-1"), &call(3, "echo")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_client_response_passes_only_for_a_request_the_server_sent() {
    let mut h = harness(|body| {
        if body.contains("\"initialize\"") {
            let mut r = echo_ok(body);
            r.headers_mut()
                .insert("mcp-session-id", header::HeaderValue::from_static("s"));
            return r;
        }
        if body.contains("tools/call") {
            // The server asks the client something before it answers.
            let sse = "data: {\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"method\":\"elicitation/create\",\"params\":{}}\n\n";
            return Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from(sse))
                .unwrap();
        }
        Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Body::empty())
            .unwrap()
    });
    let alice = token("alice", &["reader"]);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
    h.post(Some(&alice), None, init).await;
    let answer = r#"{"jsonrpc":"2.0","id":"srv-1","result":{"action":"accept"}}"#;
    let r = h.post(Some(&alice), Some("s"), answer).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "unsolicited: {}", r.body);
    h.post(Some(&alice), Some("s"), &call(2, "echo")).await;
    let r = h.post(Some(&alice), Some("s"), answer).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(h.seen().last().unwrap().body, answer);
}

#[tokio::test]
async fn a_resumed_get_stream_replaying_a_list_result_is_filtered_too() {
    let mut h = harness(|body| {
        if body.contains("\"initialize\"") {
            let mut r = echo_ok(body);
            r.headers_mut()
                .insert("mcp-session-id", header::HeaderValue::from_static("s"));
            return r;
        }
        // GET with Last-Event-ID: the server replays the answer to an earlier tools/list.
        let replay = json!({"jsonrpc": "2.0", "id": 9,
            "result": serde_json::from_str::<Value>(TOOLS).unwrap()});
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from(format!("id: 0/4\ndata: {replay}\n\n")))
            .unwrap()
    });
    let alice = token("alice", &["reader"]);
    h.post(
        Some(&alice),
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
    )
    .await;
    let get = Request::get("/mcp")
        .header(header::AUTHORIZATION, format!("Bearer {alice}"))
        .header("mcp-session-id", "s")
        .header("last-event-id", "0/3")
        .body(Body::empty())
        .unwrap();
    let r = h.send(get).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.starts_with("id: 0/4\ndata: "), "{}", r.body);
    assert!(!r.body.contains("deploy"), "{}", r.body);
    assert!(r.body.contains("whoami"), "{}", r.body);
}

#[tokio::test]
async fn hide_mode_answers_a_denied_tool_as_unknown() {
    let verifier = Verifier::new(vec![IssuerPolicy::external(
        ISS,
        AUD,
        key().verify_key().clone(),
    )]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut service = AuthLayer::builder()
        .authenticator(verifier)
        .authorizer(AuthorizerBuilder::new().build().unwrap())
        .resource_metadata(PRM)
        .hide_denied(true)
        .audit(Arc::new(MemorySink::new()))
        .build()
        .unwrap()
        .layer(Recorder {
            seen: seen.clone(),
            answer: Arc::new(echo_ok),
        });
    let req = Request::post("/mcp")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token("alice", &["user"])),
        )
        .body(Body::from(call(4, "deploy")))
        .unwrap();
    let r = service.call(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["error"],
        json!({"code": -32602, "message": "Unknown tool: deploy"})
    );
    assert!(seen.lock().unwrap().is_empty());
}

/// The directory as a static attribute file: alice is in ops, bob is not listed.
fn directory() -> crate::attributes::Providers {
    use crate::attributes::{StaticFormat, StaticProvider, StaticTable};
    let file = format!(
        "[[subjects]]\nissuer = \"{ISS}\"\nsubject = \"alice\"\nattributes = {{ team = \"ops\" }}\n"
    );
    let table = StaticTable::parse(&file, StaticFormat::Toml).unwrap();
    crate::attributes::Providers::new(vec![Arc::new(StaticProvider::new("directory", table))])
}

/// An HTTP attribute service that is not running: a port that was free a moment ago.
fn stopped_hr_service() -> crate::attributes::Providers {
    use crate::attributes::{HttpProvider, HttpSpec};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = HttpSpec::new(format!("http://127.0.0.1:{port}/attributes"));
    let provider = HttpProvider::new("hr", spec, None).unwrap();
    crate::attributes::Providers::new(vec![Arc::new(provider)])
}

/// A policy allowing `deploy` when the argument `env` is `staging` and `attribute` is `value`.
fn deploy_policy(attribute: &str, value: Value) -> Authorizer {
    use mcp_guard_core::abac::{AttributePath, Condition, Effect, Operator, Policy};
    let leaf = |path: &str, value: Value| Condition::Compare {
        path: AttributePath::parse(path).unwrap(),
        operator: Operator::parse("equals", Some(value)).unwrap(),
    };
    let policy = Policy::new(
        "deploy-staging",
        None,
        Effect::Allow,
        &["tools:deploy"],
        &["execute"],
        vec![
            leaf("resource.arguments.env", json!("staging")),
            leaf(attribute, value),
        ],
    )
    .unwrap();
    AuthorizerBuilder::new()
        .mode(mcp_guard_core::Mode::Abac)
        .policy(policy)
        .build()
        .unwrap()
}

fn deploy_request(sub: &str, env: &str) -> Request<Body> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "deploy", "arguments": {"env": env}}});
    Request::post("/mcp")
        .header(header::AUTHORIZATION, format!("Bearer {}", token(sub, &[])))
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn abac_on_a_tool_argument_with_static_provider_attributes() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let audit = Arc::new(MemorySink::new());
    let mut service = AuthLayer::builder()
        .authenticator(Verifier::new(vec![IssuerPolicy::external(
            ISS,
            AUD,
            key().verify_key().clone(),
        )]))
        .authorizer(deploy_policy("directory.team", json!("ops")))
        .resource_metadata(PRM)
        .attribute_providers(directory(), std::time::Duration::from_secs(1))
        .audit(audit.clone())
        .build()
        .unwrap()
        .layer(Recorder {
            seen: seen.clone(),
            answer: Arc::new(echo_ok),
        });
    let status = |r: Response<Body>| r.status();
    assert_eq!(
        status(
            service
                .call(deploy_request("alice", "staging"))
                .await
                .unwrap()
        ),
        StatusCode::OK
    );
    assert_eq!(
        status(service.call(deploy_request("alice", "prod")).await.unwrap()),
        StatusCode::FORBIDDEN
    );
    // Bob is not in the file: the attribute is missing, so unknown, and unknown never grants.
    assert_eq!(
        status(
            service
                .call(deploy_request("bob", "staging"))
                .await
                .unwrap()
        ),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "only alice's staging deploy got through"
    );
    let denied: Vec<AuditEvent> = audit
        .events()
        .into_iter()
        .filter(|e| e.outcome == Some("deny"))
        .collect();
    assert_eq!(denied.len(), 2);
    assert_eq!(denied[1].subject.as_deref(), Some("bob"));
    let reason = denied[1].reason.as_deref().unwrap();
    assert!(reason.contains("`directory.team`"), "{reason}");
    assert_eq!(denied[1].unknown.len(), 1, "{:?}", denied[1]);
    assert_eq!(denied[1].unknown[0].attribute, "directory.team");
    // The argument's value never reaches the audit line.
    assert!(!format!("{denied:?}").contains("prod"), "{denied:?}");
}

#[tokio::test]
async fn a_userinfo_provider_is_asked_with_the_requests_own_token() {
    use crate::attributes::{Providers, UserinfoProvider, UserinfoSpec};
    // The issuer's userinfo endpoint: alice is in ops, whatever token is shown; it keeps what
    // it was sent.
    let sent = Arc::new(Mutex::new(Vec::<String>::new()));
    let s = sent.clone();
    let app = axum::Router::new().route(
        "/userinfo",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let s = s.clone();
            async move {
                let auth = headers.get(header::AUTHORIZATION).unwrap();
                s.lock().unwrap().push(auth.to_str().unwrap().to_owned());
                axum::Json(json!({"sub": "alice", "team": "ops"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/userinfo", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let provider = UserinfoProvider::new("idp", UserinfoSpec::new(url, ISS)).unwrap();
    let mut service = AuthLayer::builder()
        .authenticator(Verifier::new(vec![IssuerPolicy::external(
            ISS,
            AUD,
            key().verify_key().clone(),
        )]))
        .authorizer(deploy_policy("idp.team", json!("ops")))
        .resource_metadata(PRM)
        .attribute_providers(
            Providers::new(vec![Arc::new(provider)]),
            std::time::Duration::from_secs(2),
        )
        .build()
        .unwrap()
        .layer(Recorder {
            seen: Arc::new(Mutex::new(Vec::new())),
            answer: Arc::new(echo_ok),
        });
    let request = deploy_request("alice", "staging");
    let authorization = request.headers()[header::AUTHORIZATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        service.call(request).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(*sent.lock().unwrap(), [authorization]);
    // Bob's token is sent too (same issuer), but the answer is about alice: unknown, denied.
    let r = service
        .call(deploy_request("bob", "staging"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(sent.lock().unwrap().len(), 2);
    server.abort();
}

#[tokio::test]
async fn a_stopped_http_provider_takes_access_away_and_the_audit_says_why() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let audit = Arc::new(MemorySink::new());
    let mut service = AuthLayer::builder()
        .authenticator(Verifier::new(vec![IssuerPolicy::external(
            ISS,
            AUD,
            key().verify_key().clone(),
        )]))
        .authorizer(deploy_policy("hr.approved", json!(true)))
        .resource_metadata(PRM)
        .attribute_providers(stopped_hr_service(), std::time::Duration::from_secs(2))
        .audit(audit.clone())
        .build()
        .unwrap()
        .layer(Recorder {
            seen: seen.clone(),
            answer: Arc::new(echo_ok),
        });
    let r = service
        .call(deploy_request("alice", "staging"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], json!(-31003));
    assert!(
        seen.lock().unwrap().is_empty(),
        "the call never reached the server"
    );
    let e = audit
        .events()
        .into_iter()
        .find(|e| e.outcome == Some("deny"))
        .unwrap();
    assert_eq!(e.unknown.len(), 1, "{e:?}");
    assert_eq!(e.unknown[0].attribute, "hr.approved");
    assert!(
        e.unknown[0]
            .reason
            .contains("provider failed: cannot connect"),
        "{e:?}"
    );
    // The configured URL is not in the audit line.
    assert!(!format!("{e:?}").contains("127.0.0.1:"), "{e:?}");
}

/// An authenticator whose revocation store is down.
struct StoreDown;

impl super::Authenticate for StoreDown {
    fn authenticate(
        &self,
        _: &str,
        _: i64,
    ) -> Result<Arc<crate::token::VerifiedToken>, crate::token::AuthnError> {
        Err(crate::store::StoreError("connection refused".into()).into())
    }
}

#[tokio::test]
async fn an_unreachable_store_is_503_never_an_allow() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut service = AuthLayer::builder()
        .authenticator(StoreDown)
        .authorizer(AuthorizerBuilder::new().build().unwrap())
        .resource_metadata(PRM)
        .audit(Arc::new(MemorySink::new()))
        .build()
        .unwrap()
        .layer(Recorder {
            seen: seen.clone(),
            answer: Arc::new(echo_ok),
        });
    let req = Request::post("/mcp")
        .header(header::AUTHORIZATION, "Bearer whatever")
        .body(Body::from(call(1, "echo")))
        .unwrap();
    let r = service.call(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], -31503);
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn only_post_carries_messages_to_the_service() {
    let mut h = harness(echo_ok);
    let alice = token("alice", &["reader"]);
    let put = Request::put("/mcp")
        .header(header::AUTHORIZATION, format!("Bearer {alice}"))
        .body(Body::from(call(1, "deploy")))
        .unwrap();
    assert_eq!(h.send(put).await.status, StatusCode::METHOD_NOT_ALLOWED);
    let get = Request::get("/mcp")
        .header(header::AUTHORIZATION, format!("Bearer {alice}"))
        .body(Body::from(call(1, "deploy")))
        .unwrap();
    assert_eq!(h.send(get).await.status, StatusCode::OK);
    let seen = h.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, "", "a GET's body is not passed on");
}
