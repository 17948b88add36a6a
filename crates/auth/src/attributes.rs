//! Attribute providers for ABAC (DESIGN.md section 6): a static file, the token's claims, an
//! HTTP service at a configured URL, and the OpenID Connect userinfo endpoint of the token's own
//! issuer. They run before the core decides, concurrently and under one deadline; each answer or
//! failure becomes an input to the core ([`ProvidedAttributes`]).
//!
//! Guarantees:
//! - A failure (timeout, refused connection, non-2xx, bad JSON, an answer that is not an object,
//!   or too large) is recorded as *unavailable*, never as an empty answer: every attribute under
//!   that provider is then unknown, which can only take access away.
//! - The reason recorded is short and fixed in form; it never holds a URL, a token or the body
//!   of an answer.
//! - Requests go only to the URL in configuration, never to one named by a request or a token.
//! - The caller's own token ([`Bearer`]) is sent only by the userinfo provider, and only to the
//!   endpoint configured for the issuer that signed it.

mod claims;
mod http;
mod static_file;
mod userinfo;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mcp_guard_core::{Principal, ProvidedAttributes};
use serde_json::Value;

pub use claims::ClaimsProvider;
pub use http::{HttpMethod, HttpProvider, HttpSpec};
pub use static_file::{StaticFileError, StaticFormat, StaticProvider, StaticTable};
pub use userinfo::{UserinfoProvider, UserinfoSpec};

/// What a provider's `attributes` call returns.
pub type AttributesFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Value, ProviderError>> + Send + 'a>>;

/// Whom attributes are asked for: the verified principal and, when it authenticated with one,
/// its own bearer token.
#[derive(Clone, Copy, Debug)]
pub struct Asker<'a> {
    /// The verified principal.
    pub principal: &'a Principal,
    /// The bearer token the principal was verified from; `None` for any other credential.
    pub bearer: Option<Bearer<'a>>,
}

impl<'a> Asker<'a> {
    /// A principal with no bearer token at hand.
    pub fn new(principal: &'a Principal) -> Self {
        Asker {
            principal,
            bearer: None,
        }
    }

    /// Adds the bearer token `principal` was verified from, and its `exp` (Unix seconds).
    pub fn with_bearer(mut self, token: &'a str, exp: i64) -> Self {
        self.bearer = Some(Bearer { token, exp });
        self
    }
}

impl<'a> From<&'a Principal> for Asker<'a> {
    fn from(principal: &'a Principal) -> Self {
        Asker::new(principal)
    }
}

/// A caller's own bearer token and its expiry. Its `Debug` shows a fingerprint, never the token.
#[derive(Clone, Copy)]
pub struct Bearer<'a> {
    token: &'a str,
    exp: i64,
}

impl<'a> Bearer<'a> {
    /// The token itself, for the one request that must send it.
    pub fn expose(&self) -> &'a str {
        self.token
    }

    /// Its `exp`, in Unix seconds.
    pub fn exp(&self) -> i64 {
        self.exp
    }
}

impl std::fmt::Debug for Bearer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bearer({}, exp {})",
            crate::Fingerprint::of(self.token.as_bytes()),
            self.exp
        )
    }
}

/// A source of attributes for a principal, read by policies as `<name>.<path>`.
pub trait Provider: Send + Sync {
    /// The name its attributes are read under (the policy path's root).
    fn name(&self) -> &str;
    /// The attributes of the asker's principal (a JSON object), or why they could not be had.
    fn attributes<'a>(&'a self, asker: Asker<'a>) -> AttributesFuture<'a>;
    /// Whether it reads the caller's own bearer token (userinfo); callers keep the token for the
    /// request only when some provider does.
    fn reads_bearer(&self) -> bool {
        false
    }
}

/// Why a provider has no answer. The text is what the decision and the audit line show.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The service could not be reached.
    #[error("cannot connect")]
    Connect,
    /// The request failed another way (TLS, protocol).
    #[error("the request failed")]
    Request,
    /// The service answered with a status outside 200..=299.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// The answer was longer than allowed.
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// The answer was not JSON.
    #[error("answer is not valid JSON")]
    BadJson,
    /// The answer was JSON, but not an object.
    #[error("answer is not a JSON object")]
    NotObject,
    /// The provider could not be set up (e.g. its HTTP client).
    #[error("not set up: {0}")]
    Setup(String),
    /// The provider does not apply to this caller (e.g. a userinfo endpoint asked about a token
    /// of another issuer); the text says why in a few words.
    #[error("{0}")]
    NotApplicable(&'static str),
    /// The answer contradicts the verified identity (a userinfo `sub` that is not the
    /// principal's subject).
    #[error("userinfo subject differs")]
    SubjectDiffers,
}

/// The providers the loaded policies read, run together before each decision that needs them.
#[derive(Clone, Default)]
pub struct Providers {
    list: Vec<Arc<dyn Provider>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Providers {
    /// A set of providers; names are expected to be distinct (configuration checks it).
    pub fn new(list: Vec<Arc<dyn Provider>>) -> Self {
        Providers { list }
    }

    /// Whether there is nothing to run (then gathering costs nothing).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether some provider reads the caller's own bearer token.
    pub fn read_bearer(&self) -> bool {
        self.list.iter().any(|p| p.reads_bearer())
    }

    /// The providers' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|p| p.name())
    }

    /// Runs every provider for the asker at once. A provider that has not answered within
    /// `within` is recorded as unavailable, as is one that fails.
    pub async fn gather(&self, asker: Asker<'_>, within: Duration) -> ProvidedAttributes {
        let mut out = ProvidedAttributes::new();
        if self.list.is_empty() {
            return out;
        }
        let deadline = tokio::time::Instant::now() + within;
        let runs = self.list.iter().map(|p| async move {
            let result = match tokio::time::timeout_at(deadline, p.attributes(asker)).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::Timeout(within)),
            };
            (p.name(), result)
        });
        for (name, result) in futures_util::future::join_all(runs).await {
            match result {
                Ok(value) => out.insert_available(name, value),
                Err(e) => {
                    tracing::debug!(
                        target: "mcp_guard::authz",
                        provider = name,
                        reason = %e,
                        "attribute provider failed"
                    );
                    out.insert_unavailable(name, e.to_string());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_guard_core::AuthMethod;
    use mcp_guard_core::context::ProviderResult;
    use serde_json::json;

    struct Fixed(&'static str, Result<Value, ProviderError>);

    impl Provider for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn attributes<'a>(&'a self, _: Asker<'a>) -> AttributesFuture<'a> {
            Box::pin(std::future::ready(self.1.clone()))
        }
    }

    struct Slow;

    impl Provider for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        fn attributes<'a>(&'a self, _: Asker<'a>) -> AttributesFuture<'a> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(json!({"late": true}))
            })
        }
    }

    #[tokio::test]
    async fn gathers_answers_and_failures_under_one_deadline() {
        let providers = Providers::new(vec![
            Arc::new(Fixed("team", Ok(json!({"deployer": true})))),
            Arc::new(Fixed("hr", Err(ProviderError::Status(503)))),
            Arc::new(Slow),
        ]);
        let alice = Principal::new(None, "alice", AuthMethod::OwnToken);
        let started = std::time::Instant::now();
        let got = providers
            .gather(Asker::new(&alice), Duration::from_millis(100))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the deadline holds"
        );
        assert_eq!(
            got.get("team"),
            Some(&ProviderResult::Available(json!({"deployer": true})))
        );
        assert_eq!(
            got.get("hr"),
            Some(&ProviderResult::Unavailable("answered HTTP 503".into()))
        );
        assert_eq!(
            got.get("slow"),
            Some(&ProviderResult::Unavailable(
                "no answer within 100ms".into()
            ))
        );
        assert_eq!(got.get("other"), None);
    }

    #[tokio::test]
    async fn nothing_to_run_gives_nothing() {
        let alice = Principal::new(None, "alice", AuthMethod::OwnToken);
        let got = Providers::default()
            .gather(Asker::new(&alice), Duration::from_millis(1))
            .await;
        assert!(got.is_empty());
    }

    #[test]
    fn only_a_userinfo_provider_reads_the_bearer_token() {
        let claims: Arc<dyn Provider> = Arc::new(ClaimsProvider::new("claims"));
        assert!(!Providers::new(vec![claims.clone()]).read_bearer());
        let spec = UserinfoSpec::new("https://idp.example/userinfo", "https://idp.example");
        let userinfo: Arc<dyn Provider> = Arc::new(UserinfoProvider::new("idp", spec).unwrap());
        assert!(Providers::new(vec![claims, userinfo]).read_bearer());
    }
}
