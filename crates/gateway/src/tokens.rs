//! Wires the token pieces of `mcp-guard-auth` to the configuration: store, signing keys, issuer,
//! verifier, audit sink.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use mcp_guard_auth::audit::{AuditEvent, AuditSink, JsonLines, RotatingFile, rfc3339_millis};
use mcp_guard_auth::store::{MemoryStore, SqliteStore, Store};
use mcp_guard_auth::token::{
    Algorithm, IssuerPolicy, KeyRing, KeySet, SigningKey, TokenAuthenticator, TokenIssuer,
    Verifier, VerifyKey, parse_alg,
};

use crate::config::{AuditPath, Config, ExternalIssuer, IssuerKeys};

/// The wall clock in Unix seconds, read at the edge.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The wall clock in Unix milliseconds.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Opens the configured state store.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.store_path {
        Some(path) => Arc::new(
            SqliteStore::open(path)
                .with_context(|| format!("opening the store `{}`", path.display()))?,
        ),
        None => Arc::new(MemoryStore::new()),
    })
}

/// Opens the configured audit sink: standard error, standard output, or a rotated file.
pub fn open_audit(config: &Config) -> anyhow::Result<Arc<dyn AuditSink>> {
    let a = &config.audit;
    Ok(match &a.path {
        AuditPath::File(path) => {
            let file = RotatingFile::open(path, a.max_bytes, a.keep)
                .with_context(|| format!("opening the audit log `{}`", path.display()))?;
            Arc::new(JsonLines::new(file))
        }
        AuditPath::Stdout => Arc::new(JsonLines::new(std::io::stdout())),
        AuditPath::Stderr => Arc::new(JsonLines::new(std::io::stderr())),
    })
}

/// An audit event stamped with the current time.
pub fn event(name: &'static str) -> AuditEvent {
    AuditEvent {
        time: rfc3339_millis(now_millis()),
        event: name,
        ..AuditEvent::default()
    }
}

/// Where the signing key comes from.
pub enum KeySource {
    /// Generated and kept in the store (EdDSA, ES256).
    Store(KeyRing),
    /// A PEM file or the HS256 secret from the environment.
    Config(Arc<SigningKey>),
}

/// Everything token commands and endpoints need.
pub struct Tokens {
    /// The state store.
    pub store: Arc<dyn Store>,
    /// The signing key(s).
    pub keys: KeySource,
    /// Signs new tokens.
    pub issuer: TokenIssuer,
    /// Verifies and caches.
    pub authn: TokenAuthenticator,
    /// Audit events.
    pub audit: Arc<dyn AuditSink>,
}

/// The signing algorithm from config.
pub fn algorithm(config: &Config) -> anyhow::Result<Algorithm> {
    parse_alg(&config.token.algorithm)
        .with_context(|| format!("unsupported algorithm `{}`", config.token.algorithm))
}

/// Loads the signing key as configured; with `create`, makes and stores one when none exists.
pub fn load_keys(config: &Config, store: &dyn Store, create: bool) -> anyhow::Result<KeySource> {
    let alg = algorithm(config)?;
    let retention = config
        .token
        .refresh_token_expiry
        .max(config.token.access_token_expiry);
    if alg == Algorithm::HS256 {
        let var = &config.token.secret_env;
        let Some(secret) = std::env::var_os(var) else {
            bail!("`token.algorithm` is HS256 and the environment variable `{var}` is not set");
        };
        let key = SigningKey::hs256("hs256", secret.as_encoded_bytes())
            .with_context(|| format!("the secret in `{var}`"))?;
        return Ok(KeySource::Config(Arc::new(key)));
    }
    if let Some(path) = &config.token.private_key_file {
        let pem = std::fs::read(path).with_context(|| format!("reading `{}`", path.display()))?;
        let key = SigningKey::from_private_pem(alg, &pem)
            .with_context(|| format!("the private key in `{}`", path.display()))?;
        return Ok(KeySource::Config(Arc::new(key)));
    }
    let now = now_unix();
    let ring = if create {
        KeyRing::load_or_create(store, alg, now, retention)?
    } else {
        KeyRing::load(store, alg, now, retention)?
    };
    Ok(KeySource::Store(ring))
}

impl KeySource {
    /// The key that signs.
    pub fn current(&self) -> Arc<SigningKey> {
        match self {
            KeySource::Store(r) => r.current(),
            KeySource::Config(k) => k.clone(),
        }
    }

    /// The keys that verify the gateway's own tokens.
    pub fn key_set(&self) -> KeySet {
        match self {
            KeySource::Store(r) => r.key_set(),
            KeySource::Config(k) => {
                let mut set = KeySet::new();
                set.insert(k.verify_key().clone());
                set
            }
        }
    }
}

/// The gateway's own issuer name and audience.
pub fn own_identity(config: &Config) -> (String, String) {
    (
        config
            .token
            .issuer
            .clone()
            .unwrap_or_else(|| config.server.base_url.clone()),
        config
            .token
            .audience
            .clone()
            .unwrap_or_else(|| config.server.public_url.clone()),
    )
}

/// The verification policy of a configured external issuer.
pub fn external_policy(config: &Config, x: &ExternalIssuer) -> anyhow::Result<IssuerPolicy> {
    let algorithms: Vec<Algorithm> = x
        .algorithms
        .iter()
        .map(|a| parse_alg(a).with_context(|| format!("algorithm `{a}`")))
        .collect::<anyhow::Result<_>>()?;
    let single = (algorithms.len() == 1).then(|| algorithms[0]);
    let keys = match &x.keys {
        IssuerKeys::JwksFile(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading `{}`", path.display()))?;
            KeySet::from_jwks_json(&text, single)
                .with_context(|| format!("the JWKS in `{}`", path.display()))?
        }
        IssuerKeys::PublicKeyFile(path, kid) => {
            let Some(alg) = single else {
                bail!("`public_key_file` verifies one algorithm: list exactly one in `algorithms`");
            };
            let pem =
                std::fs::read(path).with_context(|| format!("reading `{}`", path.display()))?;
            let mut set = KeySet::new();
            set.insert(
                VerifyKey::from_public_pem(kid.clone(), alg, &pem)
                    .with_context(|| format!("the key in `{}`", path.display()))?,
            );
            set
        }
        IssuerKeys::SecretEnv(var) => {
            let Some(secret) = std::env::var_os(var) else {
                bail!("the environment variable `{var}` is not set");
            };
            let mut set = KeySet::new();
            for alg in &algorithms {
                set.insert(
                    VerifyKey::hmac(None, *alg, secret.as_encoded_bytes())
                        .with_context(|| format!("the secret in `{var}`"))?,
                );
            }
            set
        }
    };
    Ok(IssuerPolicy {
        issuer: x.issuer.clone(),
        own: false,
        audiences: if x.audiences.is_empty() {
            vec![config.server.public_url.clone()]
        } else {
            x.audiences.clone()
        },
        algorithms,
        keys,
        required_typ: x.require_typ.clone(),
        roles_claim: x.roles_claim.clone(),
    })
}

/// The verifier of the gateway's own tokens (by the keys it has) and the trusted issuers'.
fn verifier_for(config: &Config, keys: &KeySource) -> anyhow::Result<Verifier> {
    let (iss, aud) = own_identity(config);
    let own = IssuerPolicy {
        issuer: iss,
        own: true,
        audiences: vec![aud],
        algorithms: vec![keys.current().alg()],
        keys: keys.key_set(),
        required_typ: Some("at+jwt".into()),
        roles_claim: "roles".into(),
    };
    let mut policies = vec![own];
    for x in &config.issuers {
        policies.push(
            external_policy(config, x).with_context(|| format!("trusted issuer `{}`", x.issuer))?,
        );
    }
    Ok(Verifier::new(policies)
        .leeway(config.token.leeway)
        .max_bytes(config.token.max_token_bytes))
}

/// A verifier for a reloaded configuration: keys read again from the store (a `keys rotate` in
/// another process shows up) or the configured files, and the trusted issuers as configured now.
pub fn open_verifier(config: &Config, store: &dyn Store) -> anyhow::Result<Verifier> {
    let keys = load_keys(config, store, false)?;
    verifier_for(config, &keys)
}

/// Opens store, keys, issuer and verifier; makes a signing key when the store has none (as the
/// first start does).
pub fn open(config: &Config) -> anyhow::Result<Tokens> {
    let store = open_store(config)?;
    let keys = load_keys(config, &*store, true)?;
    let (iss, aud) = own_identity(config);
    let issuer = TokenIssuer::new(
        iss.clone(),
        aud.clone(),
        config.token.access_token_expiry,
        config.token.refresh_token_expiry,
        keys.current(),
    );
    let verifier = verifier_for(config, &keys)?;
    let authn = TokenAuthenticator::new(verifier, store.clone(), 10_000);
    Ok(Tokens {
        store,
        keys,
        issuer,
        authn,
        audit: open_audit(config)?,
    })
}
