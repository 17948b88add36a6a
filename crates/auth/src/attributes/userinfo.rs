//! Attributes from the OpenID Connect userinfo endpoint of the issuer that signed the caller's
//! token: `GET <url>` with `Authorization: Bearer <the caller's own token>` (OpenID Connect Core
//! 1.0 section 5.3). That is the token's own issuer reading its own token back, not the token
//! passed on to another service.
//!
//! Guarantees:
//! - A token is sent only when the principal was verified from it and its issuer is the one
//!   configured; any other token (another issuer's, this gateway's own) is never sent.
//! - The answer must be a JSON object whose `sub` is the principal's subject (section 5.3.2).
//! - Answers are cached under the SHA-256 of the token (never the token itself), for at most
//!   `cache_ttl` and never past the token's `exp`; failures are not cached.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcp_guard_core::AuthMethod;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde_json::Value;

use super::http::object_answer;
use super::{Asker, AttributesFuture, Bearer, Provider, ProviderError};
use crate::fingerprint::sha256_b64;

/// How to ask the userinfo endpoint, and whose tokens it may be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserinfoSpec {
    /// The endpoint: https, or http to a loopback address.
    pub url: String,
    /// The issuer (`iss`) whose tokens may be sent there; no other token ever is.
    pub issuer: String,
    /// The longest wait for a whole answer, connecting included.
    pub timeout: Duration,
    /// The longest an answer is reused (never past the token's `exp`).
    pub cache_ttl: Duration,
    /// The most tokens whose answers are kept; 0 turns the cache off.
    pub cache_size: u64,
    /// The largest answer read, in bytes.
    pub max_bytes: usize,
}

impl UserinfoSpec {
    /// A spec with the defaults: 500 ms, answers kept 60 s for up to 10,000 tokens, 64 KiB at
    /// most.
    pub fn new(url: impl Into<String>, issuer: impl Into<String>) -> Self {
        UserinfoSpec {
            url: url.into(),
            issuer: issuer.into(),
            timeout: Duration::from_millis(500),
            cache_ttl: Duration::from_secs(60),
            cache_size: 10_000,
            max_bytes: 64 * 1024,
        }
    }
}

#[derive(Clone)]
struct Entry {
    value: Value,
    /// The token's `exp`: checked again at lookup, since the wall clock may jump.
    exp: SystemTime,
    /// When the cache drops it: the TTL or `exp`, whichever is first.
    drop_at: Instant,
}

struct EntryExpiry;

impl moka::Expiry<String, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.drop_at.saturating_duration_since(created_at))
    }
}

/// Asks the token issuer's userinfo endpoint about the caller, with the caller's own token.
pub struct UserinfoProvider {
    name: String,
    client: reqwest::Client,
    url: reqwest::Url,
    spec: UserinfoSpec,
    cache: Option<moka::sync::Cache<String, Entry>>,
}

impl UserinfoProvider {
    /// A provider read as `<name>.<claim>`. Refuses a URL that is not https, except http to a
    /// loopback IP address.
    pub fn new(name: impl Into<String>, spec: UserinfoSpec) -> Result<Self, ProviderError> {
        let url = reqwest::Url::parse(&spec.url)
            .map_err(|_| ProviderError::Setup("the URL does not parse".into()))?;
        if !secure_enough(&url) {
            return Err(ProviderError::Setup(
                "the URL must be https (http only to a loopback IP address)".into(),
            ));
        }
        if spec.issuer.is_empty() {
            return Err(ProviderError::Setup("no issuer".into()));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(spec.timeout)
            .timeout(spec.timeout)
            // A redirect would carry the caller's token to a place nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| ProviderError::Setup("the HTTP client".into()))?;
        let cache = (spec.cache_size > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(spec.cache_size)
                .expire_after(EntryExpiry)
                .build()
        });
        Ok(UserinfoProvider {
            name: name.into(),
            client,
            url,
            spec,
            cache,
        })
    }

    /// The caller's token, when it may be sent here: the principal was verified from a token
    /// of the configured issuer.
    fn sendable<'a>(&self, asker: &Asker<'a>) -> Result<Bearer<'a>, ProviderError> {
        let p = asker.principal;
        let external = matches!(
            p.auth_method,
            AuthMethod::ExternalJwt | AuthMethod::Introspection
        );
        if !external || p.issuer.as_deref() != Some(self.spec.issuer.as_str()) {
            return Err(ProviderError::NotApplicable("not a token of this issuer"));
        }
        asker
            .bearer
            .ok_or(ProviderError::NotApplicable("no bearer token"))
    }

    async fn fetch(&self, token: &str, subject: &str) -> Result<Value, ProviderError> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ProviderError::NotApplicable("the token is not a header value"))?;
        authorization.set_sensitive(true);
        let request = self
            .client
            .get(self.url.clone())
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, authorization);
        let value = object_answer(request, self.spec.timeout, self.spec.max_bytes).await?;
        // The answer must be about the principal the token was verified as (OIDC Core 5.3.2).
        if value.get("sub").and_then(Value::as_str) != Some(subject) {
            return Err(ProviderError::SubjectDiffers);
        }
        Ok(value)
    }
}

/// https anywhere; http only to a loopback IP literal (a name could resolve elsewhere).
fn secure_enough(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| ip.is_loopback()),
        _ => false,
    }
}

impl Provider for UserinfoProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn reads_bearer(&self) -> bool {
        true
    }

    fn attributes<'a>(&'a self, asker: Asker<'a>) -> AttributesFuture<'a> {
        Box::pin(async move {
            let bearer = self.sendable(&asker)?;
            let subject = asker.principal.subject.as_str();
            let exp = UNIX_EPOCH + Duration::from_secs(u64::try_from(bearer.exp()).unwrap_or(0));
            let Some(cache) = &self.cache else {
                return self.fetch(bearer.expose(), subject).await;
            };
            let key = sha256_b64(bearer.expose().as_bytes());
            if let Some(hit) = cache.get(&key) {
                if SystemTime::now() < hit.exp {
                    return Ok(hit.value);
                }
                cache.invalidate(&key);
            }
            let value = self.fetch(bearer.expose(), subject).await?;
            // An expired token (it cannot have verified, but the clock moves) is not cached.
            if let Ok(left) = exp.duration_since(SystemTime::now())
                && !left.is_zero()
            {
                cache.insert(
                    key,
                    Entry {
                        value: value.clone(),
                        exp,
                        drop_at: Instant::now() + left.min(self.spec.cache_ttl),
                    },
                );
            }
            Ok(value)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use mcp_guard_core::Principal;
    use serde_json::json;

    const ISS: &str = "https://idp.example";
    const TOKEN: &str = "idp-token-for-alice";

    /// A userinfo endpoint on loopback: answers `answer` to requests carrying `TOKEN`, 401 to
    /// any other, after `delay`; counts every request it sees and keeps the last token sent.
    struct Server {
        url: String,
        hits: Arc<AtomicUsize>,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn server(answer: (u16, &'static str), delay: Duration) -> Server {
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (h, s) = (hits.clone(), seen.clone());
        let app = axum::Router::new().route(
            "/userinfo",
            axum::routing::get(move |headers: HeaderMap| {
                let (h, s) = (h.clone(), s.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    s.lock().unwrap().push(auth.clone());
                    tokio::time::sleep(delay).await;
                    if auth != format!("Bearer {TOKEN}") {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    (
                        StatusCode::from_u16(answer.0).unwrap(),
                        [("content-type", "application/json")],
                        answer.1,
                    )
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/userinfo", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server {
            url,
            hits,
            seen,
            task,
        }
    }

    const ALICE_OPS: (u16, &str) = (200, r#"{"sub": "alice", "department": "ops"}"#);

    fn alice() -> Principal {
        Principal::new(Some(ISS.into()), "alice", AuthMethod::ExternalJwt)
    }

    fn in_secs(n: i64) -> i64 {
        i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap()
            + n
    }

    fn provider(url: &str, f: impl FnOnce(&mut UserinfoSpec)) -> UserinfoProvider {
        let mut spec = UserinfoSpec::new(url, ISS);
        f(&mut spec);
        UserinfoProvider::new("idp", spec).unwrap()
    }

    async fn ask(
        p: &UserinfoProvider,
        who: &Principal,
        token: Option<&str>,
        exp: i64,
    ) -> Result<Value, ProviderError> {
        let mut asker = Asker::new(who);
        if let Some(t) = token {
            asker = asker.with_bearer(t, exp);
        }
        p.attributes(asker).await
    }

    #[tokio::test]
    async fn the_callers_own_token_gets_its_userinfo() {
        let s = server(ALICE_OPS, Duration::ZERO).await;
        let p = provider(&s.url, |_| {});
        let got = ask(&p, &alice(), Some(TOKEN), in_secs(300)).await.unwrap();
        assert_eq!(got, json!({"sub": "alice", "department": "ops"}));
        assert_eq!(*s.seen.lock().unwrap(), [format!("Bearer {TOKEN}")]);
    }

    #[tokio::test]
    async fn a_token_of_another_issuer_is_never_sent() {
        let s = server(ALICE_OPS, Duration::ZERO).await;
        let p = provider(&s.url, |_| {});
        let other = Principal::new(
            Some("https://other.example".into()),
            "alice",
            AuthMethod::ExternalJwt,
        );
        // The gateway's own token, and a principal that only claims the issuer's name without
        // having been verified from one of its tokens.
        let own = Principal::new(None, "alice", AuthMethod::OwnToken);
        let local = Principal::new(Some(ISS.into()), "alice", AuthMethod::Environment);
        for who in [&other, &own, &local] {
            let e = ask(&p, who, Some(TOKEN), in_secs(300)).await.unwrap_err();
            assert_eq!(e.to_string(), "not a token of this issuer", "{who:?}");
        }
        let e = ask(&p, &alice(), None, 0).await.unwrap_err();
        assert_eq!(e.to_string(), "no bearer token");
        assert_eq!(
            s.hits.load(Ordering::SeqCst),
            0,
            "the server saw no request"
        );
    }

    #[tokio::test]
    async fn an_answer_about_someone_else_is_refused() {
        let bob = Principal::new(Some(ISS.into()), "bob", AuthMethod::ExternalJwt);
        let s = server(ALICE_OPS, Duration::ZERO).await;
        let p = provider(&s.url, |_| {});
        let e = ask(&p, &bob, Some(TOKEN), in_secs(300)).await.unwrap_err();
        assert_eq!(e, ProviderError::SubjectDiffers);
        assert_eq!(e.to_string(), "userinfo subject differs");
        // No `sub` at all is no better.
        let s = server((200, r#"{"department": "ops"}"#), Duration::ZERO).await;
        let p = provider(&s.url, |_| {});
        let e = ask(&p, &alice(), Some(TOKEN), in_secs(300))
            .await
            .unwrap_err();
        assert_eq!(e, ProviderError::SubjectDiffers);
    }

    #[tokio::test]
    async fn every_failure_is_unavailable_with_a_short_reason() {
        let cases: [((u16, &'static str), Duration, ProviderError); 4] = [
            (
                (200, r#"["alice"]"#),
                Duration::ZERO,
                ProviderError::NotObject,
            ),
            ((500, "{}"), Duration::ZERO, ProviderError::Status(500)),
            ((302, "{}"), Duration::ZERO, ProviderError::Status(302)),
            (
                ALICE_OPS,
                Duration::from_secs(5),
                ProviderError::Timeout(Duration::from_millis(200)),
            ),
        ];
        for (answer, delay, want) in cases {
            let s = server(answer, delay).await;
            let p = provider(&s.url, |x| x.timeout = Duration::from_millis(200));
            let got = ask(&p, &alice(), Some(TOKEN), in_secs(300))
                .await
                .unwrap_err();
            assert_eq!(got, want, "{answer:?}");
            let text = got.to_string();
            assert!(
                !text.contains(TOKEN) && !text.contains("127.0.0.1"),
                "{text}"
            );
            s.task.abort();
        }
    }

    #[tokio::test]
    async fn a_cached_answer_is_reused_until_the_token_expires() {
        let s = server(ALICE_OPS, Duration::ZERO).await;
        let p = provider(&s.url, |_| {});
        let far = in_secs(300);
        ask(&p, &alice(), Some(TOKEN), far).await.unwrap();
        ask(&p, &alice(), Some(TOKEN), far).await.unwrap();
        assert_eq!(
            s.hits.load(Ordering::SeqCst),
            1,
            "the second came from the cache"
        );
        // The cache never holds the token itself.
        let cache = p.cache.as_ref().unwrap();
        cache.run_pending_tasks();
        assert!(cache.iter().all(|(k, _)| !k.contains(TOKEN)));

        // The TTL is 60 s, but this token expires within a second: the entry goes with it.
        let p = provider(&s.url, |_| {});
        let soon = in_secs(1);
        ask(&p, &alice(), Some(TOKEN), soon).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        ask(&p, &alice(), Some(TOKEN), soon).await.unwrap();
        assert_eq!(s.hits.load(Ordering::SeqCst), 3, "not used after `exp`");

        // A failure is not cached.
        let down = server((503, "{}"), Duration::ZERO).await;
        let p = provider(&down.url, |_| {});
        assert!(ask(&p, &alice(), Some(TOKEN), far).await.is_err());
        assert!(ask(&p, &alice(), Some(TOKEN), far).await.is_err());
        assert_eq!(down.hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_cached_answer_lives_at_most_the_ttl() {
        let s = server(ALICE_OPS, Duration::ZERO).await;
        let p = provider(&s.url, |x| x.cache_ttl = Duration::from_millis(200));
        ask(&p, &alice(), Some(TOKEN), in_secs(300)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        ask(&p, &alice(), Some(TOKEN), in_secs(300)).await.unwrap();
        assert_eq!(s.hits.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn https_or_loopback_http_only() {
        for bad in [
            "http://idp.example/userinfo",
            "http://localhost/userinfo",
            "http://10.0.0.1/userinfo",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(
                UserinfoProvider::new("x", UserinfoSpec::new(bad, ISS)).is_err(),
                "{bad}"
            );
        }
        for good in [
            "https://idp.example/userinfo",
            "http://127.0.0.1:9/userinfo",
            "http://[::1]:9/userinfo",
        ] {
            assert!(
                UserinfoProvider::new("x", UserinfoSpec::new(good, ISS)).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let who = alice();
        let asker = Asker::new(&who).with_bearer(TOKEN, 1);
        let text = format!("{asker:?}");
        assert!(!text.contains(TOKEN), "{text}");
        assert!(text.contains("Bearer("), "{text}");
    }
}
