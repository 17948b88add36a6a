//! Attributes from an HTTP service at a configured URL: `GET <url>?subject=..&issuer=..` or
//! `POST <url>` with `{"subject": .., "issuer": ..}`. The answer must be a JSON object, within a
//! time and size limit. Answers are cached per `(issuer, subject)` in a bounded cache with a
//! time to live; failures are not cached, so a recovered service is used at once.

use std::time::Duration;

use mcp_guard_core::Principal;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use super::{Asker, AttributesFuture, Provider, ProviderError};

/// GET (subject and issuer in the query) or POST (in a JSON body).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpMethod {
    /// `?subject=..&issuer=..`.
    #[default]
    Get,
    /// `{"subject": .., "issuer": ..}`.
    Post,
}

/// How to ask the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSpec {
    /// The one URL asked, from configuration.
    pub url: String,
    /// GET or POST.
    pub method: HttpMethod,
    /// The longest wait for a whole answer, connecting included.
    pub timeout: Duration,
    /// How long an answer is reused.
    pub cache_ttl: Duration,
    /// The most principals whose answers are kept; 0 turns the cache off.
    pub cache_size: u64,
    /// The largest answer read, in bytes.
    pub max_bytes: usize,
}

impl HttpSpec {
    /// A spec with the defaults: GET, 500 ms, answers kept 60 s for up to 10,000 principals,
    /// 64 KiB at most.
    pub fn new(url: impl Into<String>) -> Self {
        HttpSpec {
            url: url.into(),
            method: HttpMethod::Get,
            timeout: Duration::from_millis(500),
            cache_ttl: Duration::from_secs(60),
            cache_size: 10_000,
            max_bytes: 64 * 1024,
        }
    }
}

type CacheKey = (Option<String>, String);

/// Asks an HTTP service for a principal's attributes.
pub struct HttpProvider {
    name: String,
    client: reqwest::Client,
    url: reqwest::Url,
    spec: HttpSpec,
    authorization: Option<HeaderValue>,
    cache: Option<moka::sync::Cache<CacheKey, Value>>,
}

impl HttpProvider {
    /// A provider read as `<name>.<path>`; `bearer`, when given, is the gateway's own credential
    /// for the service (never a client's token).
    pub fn new(
        name: impl Into<String>,
        spec: HttpSpec,
        bearer: Option<&str>,
    ) -> Result<Self, ProviderError> {
        let url = reqwest::Url::parse(&spec.url)
            .map_err(|_| ProviderError::Setup("the URL does not parse".into()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ProviderError::Setup("the URL is not http or https".into()));
        }
        let authorization = match bearer {
            None => None,
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| ProviderError::Setup("the token is not a header value".into()))?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        let client = reqwest::Client::builder()
            .connect_timeout(spec.timeout)
            .timeout(spec.timeout)
            // A redirect would send the subject (and the credential) somewhere not configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| ProviderError::Setup("the HTTP client".into()))?;
        let cache = (spec.cache_size > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(spec.cache_size)
                .time_to_live(spec.cache_ttl)
                .build()
        });
        Ok(HttpProvider {
            name: name.into(),
            client,
            url,
            spec,
            authorization,
            cache,
        })
    }

    async fn fetch(&self, principal: &Principal) -> Result<Value, ProviderError> {
        let mut request = match self.spec.method {
            HttpMethod::Get => {
                let mut url = self.url.clone();
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("subject", &principal.subject);
                    if let Some(iss) = &principal.issuer {
                        q.append_pair("issuer", iss);
                    }
                }
                self.client.get(url)
            }
            HttpMethod::Post => {
                let body = json!({"subject": principal.subject, "issuer": principal.issuer});
                self.client
                    .post(self.url.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string())
            }
        };
        request = request.header(ACCEPT, "application/json");
        if let Some(a) = &self.authorization {
            request = request.header(AUTHORIZATION, a.clone());
        }
        object_answer(request, self.spec.timeout, self.spec.max_bytes).await
    }
}

/// Sends `request` and reads its answer: a 2xx status, at most `max` bytes, a JSON object.
/// Each failure is reduced to its kind, because reqwest's own messages name the URL.
pub(super) async fn object_answer(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    max: usize,
) -> Result<Value, ProviderError> {
    let kind = |e: reqwest::Error| {
        if e.is_timeout() {
            ProviderError::Timeout(timeout)
        } else if e.is_connect() {
            ProviderError::Connect
        } else {
            ProviderError::Request
        }
    };
    let mut response = request.send().await.map_err(kind)?;
    let status = response.status();
    if !status.is_success() {
        return Err(ProviderError::Status(status.as_u16()));
    }
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(ProviderError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(kind)? {
        if body.len() + chunk.len() > max {
            return Err(ProviderError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ProviderError::NotObject),
        Err(_) => Err(ProviderError::BadJson),
    }
}

impl Provider for HttpProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn attributes<'a>(&'a self, asker: Asker<'a>) -> AttributesFuture<'a> {
        let principal = asker.principal;
        Box::pin(async move {
            let Some(cache) = &self.cache else {
                return self.fetch(principal).await;
            };
            let key = (principal.issuer.clone(), principal.subject.clone());
            if let Some(v) = cache.get(&key) {
                return Ok(v);
            }
            let v = self.fetch(principal).await?;
            cache.insert(key, v.clone());
            Ok(v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use mcp_guard_core::AuthMethod;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    /// A one-route HTTP server: answers every request with `status` and `body` after `delay`,
    /// counting requests and keeping the last request's head.
    struct Server {
        url: String,
        hits: Arc<AtomicUsize>,
        last: Arc<std::sync::Mutex<String>>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn server(status: u16, body: &'static str, delay: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/attrs", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(std::sync::Mutex::new(String::new()));
        let (h, l) = (hits.clone(), last.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                let (h, l) = (h.clone(), l.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let n = tcp.read(&mut buf).await.unwrap_or(0);
                    h.fetch_add(1, Ordering::SeqCst);
                    *l.lock().unwrap() = String::from_utf8_lossy(&buf[..n]).into_owned();
                    tokio::time::sleep(delay).await;
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(reply.as_bytes()).await;
                });
            }
        });
        Server {
            url,
            hits,
            last,
            task,
        }
    }

    fn alice() -> Principal {
        Principal::new(
            Some("https://idp.example".into()),
            "alice",
            AuthMethod::ExternalJwt,
        )
    }

    fn provider(url: &str, f: impl FnOnce(&mut HttpSpec)) -> HttpProvider {
        let mut spec = HttpSpec::new(url);
        f(&mut spec);
        HttpProvider::new("hr", spec, Some("gateway-own-token")).unwrap()
    }

    #[tokio::test]
    async fn get_sends_subject_and_issuer_and_takes_an_object() {
        let s = server(200, r#"{"level": 3}"#, Duration::ZERO).await;
        let p = provider(&s.url, |_| {});
        assert_eq!(
            p.attributes((&alice()).into()).await.unwrap(),
            json!({"level": 3})
        );
        let head = s.last.lock().unwrap().clone();
        assert!(
            head.starts_with("GET /attrs?subject=alice&issuer=https%3A%2F%2Fidp.example "),
            "{head}"
        );
        assert!(
            head.contains("authorization: Bearer gateway-own-token"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn post_sends_a_json_body() {
        let s = server(200, r#"{"level": 3}"#, Duration::ZERO).await;
        let p = provider(&s.url, |x| x.method = HttpMethod::Post);
        let own = Principal::new(None, "bob", AuthMethod::OwnToken);
        assert_eq!(
            p.attributes((&own).into()).await.unwrap(),
            json!({"level": 3})
        );
        let req = s.last.lock().unwrap().clone();
        assert!(req.starts_with("POST /attrs "), "{req}");
        let body = req.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(body).unwrap(),
            json!({"subject": "bob", "issuer": null})
        );
    }

    #[tokio::test]
    async fn every_failure_is_an_error_with_a_short_reason() {
        let cases: [(u16, &'static str, Duration, ProviderError); 5] = [
            (503, "{}", Duration::ZERO, ProviderError::Status(503)),
            (200, "{not json", Duration::ZERO, ProviderError::BadJson),
            (200, "[1, 2]", Duration::ZERO, ProviderError::NotObject),
            (
                200,
                r#"{"padding": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
                Duration::ZERO,
                ProviderError::TooLarge(32),
            ),
            (
                200,
                "{}",
                Duration::from_secs(5),
                ProviderError::Timeout(Duration::from_millis(200)),
            ),
        ];
        for (status, body, delay, want) in cases {
            let s = server(status, body, delay).await;
            let p = provider(&s.url, |x| {
                x.max_bytes = 32;
                x.timeout = Duration::from_millis(200);
            });
            let got = p.attributes((&alice()).into()).await.unwrap_err();
            assert_eq!(got, want, "{status} {body}");
            let text = got.to_string();
            assert!(!text.contains("127.0.0.1"), "no URL in the reason: {text}");
            s.task.abort();
        }
        // Nobody listening.
        let s = server(200, "{}", Duration::ZERO).await;
        let url = s.url.clone();
        s.task.abort();
        let _ = s.task.await;
        let p = provider(&url, |_| {});
        assert_eq!(
            p.attributes((&alice()).into()).await.unwrap_err(),
            ProviderError::Connect
        );
    }

    #[tokio::test]
    async fn answers_are_cached_per_principal_for_the_ttl_and_failures_are_not() {
        let s = server(200, r#"{"level": 3}"#, Duration::ZERO).await;
        let p = provider(&s.url, |x| x.cache_ttl = Duration::from_millis(300));
        p.attributes((&alice()).into()).await.unwrap();
        p.attributes((&alice()).into()).await.unwrap();
        assert_eq!(
            s.hits.load(Ordering::SeqCst),
            1,
            "the second answer came from the cache"
        );
        let bob = Principal::new(None, "alice", AuthMethod::OwnToken);
        p.attributes((&bob).into()).await.unwrap();
        assert_eq!(
            s.hits.load(Ordering::SeqCst),
            2,
            "another issuer is another entry"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        p.attributes((&alice()).into()).await.unwrap();
        assert_eq!(s.hits.load(Ordering::SeqCst), 3, "expired after the TTL");

        let down = server(503, "{}", Duration::ZERO).await;
        let p = provider(&down.url, |_| {});
        assert!(p.attributes((&alice()).into()).await.is_err());
        assert!(p.attributes((&alice()).into()).await.is_err());
        assert_eq!(
            down.hits.load(Ordering::SeqCst),
            2,
            "a failure is not cached"
        );
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_can_be_off() {
        let s = server(200, r#"{"level": 3}"#, Duration::ZERO).await;
        let p = provider(&s.url, |x| x.cache_size = 2);
        for i in 0..50 {
            let who = Principal::new(None, format!("user{i}"), AuthMethod::OwnToken);
            p.attributes((&who).into()).await.unwrap();
        }
        let cache = p.cache.as_ref().unwrap();
        cache.run_pending_tasks();
        assert!(cache.entry_count() <= 2, "{}", cache.entry_count());

        let p = provider(&s.url, |x| x.cache_size = 0);
        let before = s.hits.load(Ordering::SeqCst);
        p.attributes((&alice()).into()).await.unwrap();
        p.attributes((&alice()).into()).await.unwrap();
        assert_eq!(s.hits.load(Ordering::SeqCst), before + 2);
    }

    #[test]
    fn only_http_urls() {
        for bad in ["file:///etc/passwd", "not a url"] {
            assert!(
                HttpProvider::new("x", HttpSpec::new(bad), None).is_err(),
                "{bad}"
            );
        }
    }
}
