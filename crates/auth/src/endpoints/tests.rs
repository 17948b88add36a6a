use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::audit::MemorySink;
use crate::clients::hash_secret;
use crate::store::MemoryStore;
use crate::token::{Algorithm, IssuerPolicy, KeySet, SigningKey, Verifier, keys::jwks as jwks_of};

const BASE: &str = "https://gw.example";
const AUD: &str = "https://gw.example/mcp";
const SECRET: &str = "svc-secret-value";

struct Fixture {
    server: Arc<AuthServer>,
    audit: Arc<MemorySink>,
}

fn fixture() -> Fixture {
    let key = Arc::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let mut keys = KeySet::new();
    keys.insert(key.verify_key().clone());
    let verifier = Verifier::new(vec![IssuerPolicy {
        issuer: BASE.into(),
        own: true,
        audiences: vec![AUD.into()],
        algorithms: vec![Algorithm::EdDSA],
        keys,
        required_typ: Some("at+jwt".into()),
        roles_claim: "roles".into(),
    }]);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let audit = Arc::new(MemorySink::new());
    let hash = hash_secret(SECRET).unwrap();
    let client = |id: &str, introspect: bool| Client {
        id: id.into(),
        secret_hash: hash.clone(),
        roles: vec!["user".into()],
        scopes: vec!["mcp:read".into()],
        may_introspect: introspect,
    };
    let server = Arc::new(AuthServer {
        issuer: TokenIssuer::new(
            BASE,
            AUD,
            Duration::from_secs(600),
            Duration::from_secs(86_400),
            key.clone(),
        ),
        authn: TokenAuthenticator::new(verifier, store.clone(), 100),
        store,
        audit: audit.clone(),
        clients: ClientRegistry::new(vec![
            client("svc", false),
            client("other", false),
            client("rs", true),
        ])
        .unwrap(),
        jwks: jwks_of([&*key]),
        base_url: BASE.into(),
        clock: Arc::new(|| 1_795_665_360_000),
        throttle: Throttle::new(Duration::from_secs(60), 3, 20),
    });
    Fixture { server, audit }
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn post(
    f: &Fixture,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let req = req
        .extension(ClientAddr("127.0.0.1".parse().unwrap()))
        .body(Body::from(body.to_owned()))
        .unwrap();
    let resp = router(f.server.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, headers, json)
}

async fn get_json(f: &Fixture, path: &str) -> Value {
    let resp = router(f.server.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

const NOW: i64 = 1_795_665_360;

#[tokio::test]
async fn metadata_and_jwks() {
    let f = fixture();
    let m = get_json(&f, paths::METADATA).await;
    assert_eq!(m["issuer"], BASE);
    assert_eq!(m["token_endpoint"], format!("{BASE}/oauth/token"));
    assert_eq!(m["jwks_uri"], format!("{BASE}/oauth/jwks"));
    let j = get_json(&f, paths::JWKS).await;
    assert_eq!(j["keys"][0]["kty"], "OKP");
    assert!(j["keys"][0].get("d").is_none());
}

#[tokio::test]
async fn client_credentials_basic_and_post() {
    let f = fixture();
    let (s, h, v) = post(
        &f,
        paths::TOKEN,
        Some(&basic("svc", SECRET)),
        &format!(
            "grant_type=client_credentials&resource={}",
            "https%3A%2F%2Fgw.example%2Fmcp"
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "mcp:read");
    let t = f
        .server
        .authn
        .verifier()
        .verify(v["access_token"].as_str().unwrap(), NOW)
        .unwrap();
    assert_eq!(t.principal.client_id.as_deref(), Some("svc"));
    let (s, _, v) = post(
        &f,
        paths::TOKEN,
        None,
        &format!("grant_type=client_credentials&client_id=svc&client_secret={SECRET}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn token_errors_use_rfc_6749_codes() {
    let f = fixture();
    let (s, h, v) = post(
        &f,
        paths::TOKEN,
        Some(&basic("svc", "wrong")),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert_eq!(h[header::WWW_AUTHENTICATE], "Basic realm=\"mcp-guard\"");
    let (s, _, v) = post(&f, paths::TOKEN, None, "grant_type=client_credentials").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (s, _, v) = post(
        &f,
        paths::TOKEN,
        Some(&basic("svc", SECRET)),
        &format!("grant_type=client_credentials&client_id=svc&client_secret={SECRET}"),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (s, _, v) = post(
        &f,
        paths::TOKEN,
        Some(&basic("svc", SECRET)),
        "grant_type=password",
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (s, _, v) = post(
        &f,
        paths::TOKEN,
        Some(&basic("svc", SECRET)),
        "grant_type=client_credentials&resource=https%3A%2F%2Fevil.example%2Fmcp",
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );
    let (s, _, v) = post(
        &f,
        paths::TOKEN,
        Some(&basic("svc", SECRET)),
        "grant_type=client_credentials&scope=mcp%3Aadmin",
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    let (s, _, v) = post(
        &f,
        paths::TOKEN,
        Some(&basic("svc", SECRET)),
        "grant_type=client_credentials&grant_type=refresh_token",
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // The error body never echoes the secret.
    assert!(!v.to_string().contains(SECRET));
}

#[tokio::test]
async fn failed_client_authentication_is_throttled_and_audited() {
    let f = fixture();
    for _ in 0..3 {
        let (s, _, _) = post(
            &f,
            paths::TOKEN,
            Some(&basic("svc", "guess")),
            "grant_type=client_credentials",
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // Even the right secret waits now, from this address.
    let (s, h, v) = post(
        &f,
        paths::TOKEN,
        Some(&basic("svc", SECRET)),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(h.contains_key(header::RETRY_AFTER));
    let failures = f
        .audit
        .events()
        .iter()
        .filter(|e| e.event == "client_auth_failed")
        .count();
    assert_eq!(failures, 3);
    assert!(
        f.audit
            .events()
            .iter()
            .all(|e| !format!("{e:?}").contains("guess"))
    );
}

#[tokio::test]
async fn refresh_rotation_and_reuse_over_http() {
    let f = fixture();
    let verifier = f.server.authn.verifier();
    let (first, _) = grants(&f.server, &verifier)
        .start_family("svc", "alice", NOW)
        .unwrap();
    let body = format!(
        "grant_type=refresh_token&refresh_token={}",
        first.token.expose()
    );
    let (s, _, v) = post(&f, paths::TOKEN, Some(&basic("svc", SECRET)), &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["refresh_token"].is_string());
    // Another client cannot use it; the original replayed is reuse.
    let (s, _, v) = post(&f, paths::TOKEN, Some(&basic("other", SECRET)), &body).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (s, _, v) = post(&f, paths::TOKEN, Some(&basic("svc", SECRET)), &body).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(f.audit.events().iter().any(|e| e.event == "refresh_reuse"));
}

#[tokio::test]
async fn revocation_only_of_own_tokens_and_introspection() {
    let f = fixture();
    let (_, _, v) = post(
        &f,
        paths::TOKEN,
        Some(&basic("svc", SECRET)),
        "grant_type=client_credentials",
    )
    .await;
    let token = v["access_token"].as_str().unwrap().to_owned();
    let introspect = format!("token={token}");
    // Only clients allowed to introspect.
    let (s, _, v) = post(
        &f,
        paths::INTROSPECT,
        Some(&basic("svc", SECRET)),
        &introspect,
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("unauthorized_client"))
    );
    let (s, _, v) = post(
        &f,
        paths::INTROSPECT,
        Some(&basic("rs", SECRET)),
        &introspect,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["active"].as_bool(), v["client_id"].as_str()),
        (Some(true), Some("svc"))
    );
    // Another client's revocation is answered 200 and does nothing.
    let (s, _, _) = post(
        &f,
        paths::REVOKE,
        Some(&basic("other", SECRET)),
        &introspect,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(f.server.authn.authenticate(&token, NOW).is_ok());
    assert!(
        f.audit
            .events()
            .iter()
            .any(|e| e.event == "revocation_refused")
    );
    // The owner revokes it.
    let (s, _, _) = post(&f, paths::REVOKE, Some(&basic("svc", SECRET)), &introspect).await;
    assert_eq!(s, StatusCode::OK);
    assert!(f.server.authn.authenticate(&token, NOW).is_err());
    let (_, _, v) = post(
        &f,
        paths::INTROSPECT,
        Some(&basic("rs", SECRET)),
        &introspect,
    )
    .await;
    assert_eq!(v, serde_json::json!({"active": false}));
    // Garbage is answered 200 too (RFC 7009 section 2.2).
    let (s, _, _) = post(
        &f,
        paths::REVOKE,
        Some(&basic("svc", SECRET)),
        "token=garbage",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}
