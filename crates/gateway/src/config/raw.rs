//! The configuration file as written: serde shapes with spans, checked and compiled by the parent.

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub authorization: RawAuthorization,
    #[serde(default)]
    pub roles: IndexMap<String, RawRole>,
    #[serde(default)]
    pub users: Vec<RawUser>,
    #[serde(default)]
    pub groups: RawGroups,
    #[serde(default)]
    pub scope_map: IndexMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    pub policies: Vec<Spanned<RawPolicy>>,
    pub token: Option<RawToken>,
    pub session: Option<RawSession>,
    pub server: Option<RawServer>,
    pub upstream: Option<RawUpstream>,
    pub stdio: Option<RawStdio>,
    pub metrics: Option<RawMetrics>,
    pub store: Option<RawStore>,
    pub audit: Option<RawAudit>,
    #[serde(default)]
    pub clients: Vec<RawClient>,
    #[serde(default)]
    pub issuers: Vec<RawIssuer>,
    #[serde(default)]
    pub attributes: IndexMap<String, Spanned<super::attributes::RawProvider>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIssuer {
    pub issuer: Spanned<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    pub algorithms: Spanned<Vec<String>>,
    pub jwks_file: Option<Spanned<String>>,
    pub public_key_file: Option<Spanned<String>>,
    pub kid: Option<String>,
    pub secret_env: Option<String>,
    pub roles_claim: Option<String>,
    pub require_typ: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub id: Spanned<String>,
    pub secret_hash: Spanned<String>,
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub introspect: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub public_url: Option<Spanned<String>>,
    pub bind: Option<Spanned<String>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    pub max_body_bytes: Option<usize>,
    pub max_batch: Option<usize>,
    pub request_timeout: Option<Spanned<String>>,
    pub max_concurrent_requests: Option<usize>,
    pub shutdown_grace: Option<Spanned<String>>,
    pub tls_cert_file: Option<Spanned<String>>,
    pub tls_key_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub command: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<String>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: IndexMap<String, String>,
    #[serde(default)]
    pub env_from: IndexMap<String, String>,
    pub inherit_env: Option<Vec<Spanned<String>>>,
    pub max_children: Option<usize>,
    pub pool_per_principal: Option<usize>,
    pub url: Option<Spanned<String>>,
    pub bearer_token_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStdio {
    pub identity: Option<RawIdentity>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: IndexMap<String, String>,
    #[serde(default)]
    pub env_from: IndexMap<String, String>,
    pub inherit_env: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    pub subject: Spanned<String>,
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub bind: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub path: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub path: Option<Spanned<String>>,
    pub max_bytes: Option<u64>,
    pub keep: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthorization {
    pub mode: Option<Spanned<String>>,
    pub default_role: Option<Spanned<String>>,
    #[serde(default)]
    pub admin_users: Vec<Spanned<RawAdmin>>,
    #[serde(default)]
    pub public_methods: Vec<Spanned<String>>,
    pub deny_mode: Option<Spanned<String>>,
    #[serde(default)]
    pub policy_files: Vec<Spanned<String>>,
    pub attribute_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawAdmin {
    Subject(String),
    Identity {
        subject: String,
        issuer: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    #[serde(default)]
    pub permissions: Vec<Spanned<String>>,
    #[expect(dead_code, reason = "documentation for people reading the file")]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub subject: Spanned<String>,
    pub issuer: Option<String>,
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroups {
    #[serde(default)]
    pub tools: IndexMap<String, RawToolGroup>,
    #[serde(default)]
    pub resources: IndexMap<String, RawPatternGroup>,
    #[serde(default)]
    pub prompts: IndexMap<String, RawPatternGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToolGroup {
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
    #[serde(default)]
    pub annotations: IndexMap<String, bool>,
    #[serde(default)]
    pub not_annotations: IndexMap<String, bool>,
    pub combine: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPatternGroup {
    #[serde(default)]
    pub patterns: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub id: Spanned<String>,
    pub name: Option<String>,
    pub effect: Spanned<String>,
    #[serde(default)]
    pub resources: Vec<Spanned<String>>,
    #[serde(default)]
    pub actions: Vec<Spanned<String>>,
    #[serde(default)]
    pub conditions: Vec<Spanned<RawCondition>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondition {
    pub attribute: Option<Spanned<String>>,
    pub operator: Option<Spanned<String>>,
    pub value: Option<Spanned<toml::Value>>,
    pub any: Option<Vec<Spanned<RawCondition>>>,
    pub all: Option<Vec<Spanned<RawCondition>>>,
    pub not: Option<Box<Spanned<RawCondition>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicyFile {
    #[serde(default)]
    pub policies: Vec<Spanned<RawPolicy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub access_token_expiry: Option<Spanned<String>>,
    pub refresh_token_expiry: Option<Spanned<String>>,
    pub secret_env: Option<String>,
    pub algorithm: Option<Spanned<String>>,
    pub private_key_file: Option<Spanned<String>>,
    pub leeway: Option<Spanned<String>>,
    pub max_token_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    pub timeout: Option<Spanned<String>>,
    pub max_lifetime: Option<Spanned<String>>,
    pub max_sessions: Option<usize>,
    pub max_per_principal: Option<usize>,
    pub cleanup_interval: Option<Spanned<String>>,
    pub queue_capacity: Option<usize>,
}
