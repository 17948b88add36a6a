//! The one TOML configuration file (DESIGN.md section 12): load, check, compile.
//!
//! Every error names the file, line and column and the key. Values are never echoed except
//! permission patterns, role names and the like, which are not secret; secrets (later: signing
//! keys, client secrets) are read from files or the environment, never from this file.

mod attributes;
mod raw;
mod serving;

pub use attributes::AttributeSettings;

pub use serving::{
    HttpUpstream, LOCAL_ISSUER, LocalIdentity, SELF_COMMAND, ServerSettings, SessionSettings,
    StdioSettings, StdioUpstream, TlsFiles, Upstream, demo_upstream, host_of, resolve_command,
    strip_port,
};

/// The environment variable holding the stdio front's token; never passed to a child.
pub const TOKEN_ENV: &str = "MCP_GUARD_TOKEN";

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_guard_core::abac::{AttributePath, Condition, Effect, Operator, Policy};
use mcp_guard_core::group::{Combine, Groups, TargetSet, ToolGroup};
use mcp_guard_core::{Assignment, Authorizer, AuthorizerBuilder, Mode, Pattern};
use toml::Spanned;

use raw::{RawAdmin, RawCondition, RawConfig, RawPolicy, RawPolicyFile};

/// The configuration the repository ships, used when no file is given and none is found.
pub const EMBEDDED_DEFAULTS: &str = include_str!("../../../mcp-guard.toml");

/// The file name looked for in the working directory.
pub const DEFAULT_FILE: &str = "mcp-guard.toml";

/// What a client sees when it lacks a permission.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DenyMode {
    /// -31003 naming the missing permission (and HTTP 403 where possible).
    #[default]
    Forbid,
    /// -32602 `Unknown tool: <name>`, as if the item did not exist.
    Hide,
}

/// Token settings (the seed's `token` section); used by the token issue's commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSettings {
    /// `iss` of issued tokens; `None` means the public base URL.
    pub issuer: Option<String>,
    /// `aud` of issued tokens; `None` means the canonical resource URL.
    pub audience: Option<String>,
    /// Access token lifetime.
    pub access_token_expiry: Duration,
    /// Refresh token lifetime.
    pub refresh_token_expiry: Duration,
    /// The environment variable holding the HS256 secret, if HS256 is used.
    pub secret_env: String,
    /// The signing algorithm: `EdDSA` (default), `ES256`, `RS256` or `HS256`.
    pub algorithm: String,
    /// A PEM private key to sign with instead of a key kept in the store.
    pub private_key_file: Option<PathBuf>,
    /// Clock leeway for `exp` and `nbf`.
    pub leeway: Duration,
    /// The largest token accepted, in bytes.
    pub max_token_bytes: usize,
}

/// A trusted external JWT issuer (`[[issuers]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalIssuer {
    /// `iss`, compared exactly.
    pub issuer: String,
    /// `aud` must contain one of these (default: the public URL).
    pub audiences: Vec<String>,
    /// The algorithms accepted, explicitly; never `none`.
    pub algorithms: Vec<String>,
    /// Where its keys come from.
    pub keys: IssuerKeys,
    /// Where roles live in its claims.
    pub roles_claim: String,
    /// The `typ` header required, if any.
    pub require_typ: Option<String>,
}

/// The verification keys of an external issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssuerKeys {
    /// A JWKS file (public keys only).
    JwksFile(PathBuf),
    /// One public key PEM, with an optional key id.
    PublicKeyFile(PathBuf, Option<String>),
    /// An HMAC secret in this environment variable.
    SecretEnv(String),
}

/// Where audit lines go (`[audit]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditTarget {
    /// Standard error (default), standard output, or a file.
    pub path: AuditPath,
    /// A file is rotated before it grows past this many bytes.
    pub max_bytes: u64,
    /// How many rotated files are kept (`<path>.1` is the newest).
    pub keep: usize,
}

impl Default for AuditTarget {
    fn default() -> Self {
        AuditTarget {
            path: AuditPath::Stderr,
            max_bytes: 100 << 20,
            keep: 5,
        }
    }
}

/// The destination of audit lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditPath {
    /// Standard error.
    Stderr,
    /// Standard output.
    Stdout,
    /// An append-only file, rotated by size.
    File(PathBuf),
}

/// A loaded, checked configuration.
#[derive(Debug)]
pub struct Config {
    /// Where it came from (`<embedded defaults>` when built in).
    pub source: String,
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    /// The compiled authorizer.
    pub authorizer: Authorizer,
    /// Methods that need no authentication; empty by default.
    pub public_methods: Vec<String>,
    /// Forbid or hide.
    pub deny_mode: DenyMode,
    /// Token settings.
    pub token: TokenSettings,
    /// Session settings.
    pub session: SessionSettings,
    /// Where and how the gateway listens.
    pub server: ServerSettings,
    /// The MCP server behind the gateway.
    pub upstream: Upstream,
    /// `mcp-guard stdio`: the local identity and the child's environment.
    pub stdio: StdioSettings,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None` turns them off.
    pub metrics_bind: Option<std::net::SocketAddr>,
    /// The state store file; `None` keeps state in memory (lost at exit).
    pub store_path: Option<PathBuf>,
    /// Where audit lines go.
    pub audit: AuditTarget,
    /// Confidential OAuth clients (`[[clients]]`), secrets as argon2 hashes.
    pub clients: Vec<mcp_guard_auth::clients::Client>,
    /// Trusted external JWT issuers (`[[issuers]]`).
    pub issuers: Vec<ExternalIssuer>,
    /// The attribute providers the policies read (`[attributes.*]`).
    pub attributes: AttributeSettings,
    /// Warnings that do not stop a start (e.g. policies present in `rbac` mode).
    pub warnings: Vec<String>,
}

/// A configuration error located in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// The key the error is about, dotted.
    pub key: String,
    /// What is wrong (lowercase, no final period).
    pub message: String,
    /// How to fix it, when known.
    pub help: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        write!(f, "{}", self.message)?;
        if !self.key.is_empty() {
            write!(f, " (key `{}`)", self.key)?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Source text with a name, for turning byte offsets into lines and columns.
struct Source<'a> {
    name: String,
    text: &'a str,
}

impl Source<'_> {
    fn locate(&self, offset: usize) -> (usize, usize) {
        line_col(self.text, offset)
    }

    fn error(
        &self,
        span: std::ops::Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = self.locate(span.start);
        ConfigError {
            file: self.name.clone(),
            line,
            column,
            key: key.into(),
            message: message.into(),
            help: None,
        }
    }

    /// The offset of a position inside a string value: past the opening quote when it is a
    /// plain string (exact unless escapes precede the position).
    fn inside_string(&self, span: &std::ops::Range<usize>, inner: usize) -> usize {
        let raw = self.text.get(span.clone()).unwrap_or_default();
        let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else if raw.starts_with('"') || raw.starts_with('\'') {
            1
        } else {
            0
        };
        span.start + quote + inner
    }

    /// A TOML syntax or shape error: position from its span, key guessed from the text there.
    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        let key = self.key_at(span.start);
        let message = e.message().trim().trim_end_matches('.').to_owned();
        self.error(span, key, message)
    }

    /// The dotted key at an offset: the enclosing `[table]` plus the `key =` on that line.
    fn key_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = &self.text[line_start..line_end];
        let table = self.text[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
            .unwrap_or_default();
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim())
            .filter(|k| !k.starts_with('[') && !k.is_empty())
            .map(|k| k.trim_matches('"').to_owned());
        match (table.is_empty(), key) {
            (_, None) => table,
            (true, Some(k)) => k,
            (false, Some(k)) => format!("{table}.{k}"),
        }
    }
}

/// The 1-based line and column (in characters) of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Loads a configuration file and everything it names.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        key: String::new(),
        message: format!("cannot read the file: {e}"),
        help: None,
    })?;
    let mut config = load_str(&path.display().to_string(), &text, path.parent())?;
    config.path = Some(path.to_owned());
    Ok(config)
}

/// Loads the configuration built into the binary.
pub fn load_embedded() -> Result<Config, ConfigError> {
    load_str("<embedded defaults>", EMBEDDED_DEFAULTS, None)
}

/// Resolves `--config`: the given file, else `./mcp-guard.toml`, else the embedded defaults.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => load_file(p),
        None if Path::new(DEFAULT_FILE).exists() => load_file(Path::new(DEFAULT_FILE)),
        None => load_embedded(),
    }
}

/// Parses and checks configuration text; `base` resolves relative `policy_files`.
pub fn load_str(name: &str, text: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
    let src = Source {
        name: name.to_owned(),
        text,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    compile(&src, raw, base)
}

fn compile(src: &Source<'_>, raw: RawConfig, base: Option<&Path>) -> Result<Config, ConfigError> {
    let auth = raw.authorization;
    let mode = match &auth.mode {
        None => Mode::Rbac,
        Some(m) => Mode::parse(m.get_ref()).ok_or_else(|| {
            let mut e = src.error(
                m.span(),
                "authorization.mode",
                format!("unknown mode `{}`", m.get_ref()),
            );
            e.help = Some("use `rbac`, `abac` or `rbac+abac`".into());
            e
        })?,
    };
    let deny_mode = match &auth.deny_mode {
        None => DenyMode::Forbid,
        Some(m) => match m.get_ref().as_str() {
            "forbid" => DenyMode::Forbid,
            "hide" => DenyMode::Hide,
            other => {
                let mut e = src.error(
                    m.span(),
                    "authorization.deny_mode",
                    format!("unknown deny mode `{other}`"),
                );
                e.help = Some("use `forbid` or `hide`".into());
                return Err(e);
            }
        },
    };

    let mut builder = AuthorizerBuilder::new().mode(mode);
    let mut role_names: Vec<String> = mcp_guard_core::DEFAULT_ROLES
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();

    // Groups first: patterns are checked against them.
    let mut groups = Groups::default();
    for (name, g) in &raw.groups.tools {
        let key = format!("groups.tools.{name}");
        check_group_name(src, name, &key)?;
        let names = target_set(src, &g.names, &format!("{key}.names"))?;
        let combine = match g.combine.as_ref().map(|c| c.get_ref().as_str()) {
            None | Some("any") => Combine::Any,
            Some("all") => Combine::All,
            Some(other) => {
                let span = g.combine.as_ref().map(Spanned::span).unwrap_or(0..0);
                let mut e = src.error(
                    span,
                    format!("{key}.combine"),
                    format!("unknown value `{other}`"),
                );
                e.help = Some("use `any` or `all`".into());
                return Err(e);
            }
        };
        let group = ToolGroup {
            names,
            annotations: g.annotations.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            not_annotations: g
                .not_annotations
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            combine,
        };
        groups.set_tool_group(name.clone(), group);
    }
    for (name, g) in &raw.groups.resources {
        let key = format!("groups.resources.{name}");
        check_group_name(src, name, &key)?;
        groups.set_resource_group(
            name.clone(),
            target_set(src, &g.patterns, &format!("{key}.patterns"))?,
        );
    }
    for (name, g) in &raw.groups.prompts {
        let key = format!("groups.prompts.{name}");
        check_group_name(src, name, &key)?;
        groups.set_prompt_group(
            name.clone(),
            target_set(src, &g.patterns, &format!("{key}.patterns"))?,
        );
    }

    for (name, role) in &raw.roles {
        let key = format!("roles.{name}.permissions");
        let patterns = patterns(src, &role.permissions, &key, &groups)?;
        if !role_names.contains(name) {
            role_names.push(name.clone());
        }
        builder = builder.role(name.clone(), patterns);
    }
    let known_role = |r: &Spanned<String>, key: &str| -> Result<(), ConfigError> {
        if role_names.contains(r.get_ref()) {
            return Ok(());
        }
        let mut e = src.error(r.span(), key, format!("unknown role `{}`", r.get_ref()));
        e.help = Some(format!("defined roles: {}", role_names.join(", ")));
        Err(e)
    };

    for (scope, pats) in &raw.scope_map {
        let key = format!("scope_map.{scope}");
        builder = builder.scope(scope.clone(), patterns(src, pats, &key, &groups)?);
    }

    for (i, user) in raw.users.iter().enumerate() {
        if user.subject.get_ref().is_empty() {
            return Err(src.error(
                user.subject.span(),
                format!("users[{i}].subject"),
                "the subject is empty",
            ));
        }
        for (j, r) in user.roles.iter().enumerate() {
            known_role(r, &format!("users[{i}].roles[{j}]"))?;
        }
        builder = builder.assign(Assignment {
            issuer: user.issuer.clone(),
            subject: user.subject.get_ref().clone(),
            roles: user.roles.iter().map(|r| r.get_ref().clone()).collect(),
        });
    }
    for (i, admin) in auth.admin_users.iter().enumerate() {
        let (issuer, subject) = match admin.get_ref() {
            RawAdmin::Subject(s) => (None, s.clone()),
            RawAdmin::Identity { subject, issuer } => (issuer.clone(), subject.clone()),
        };
        if subject.is_empty() {
            return Err(src.error(
                admin.span(),
                format!("authorization.admin_users[{i}]"),
                "the subject is empty",
            ));
        }
        if !role_names.iter().any(|r| r == "admin") {
            return Err(src.error(
                admin.span(),
                "authorization.admin_users",
                "`admin_users` needs a role named `admin`",
            ));
        }
        builder = builder.admin_user(issuer, subject);
    }
    if let Some(r) = &auth.default_role {
        known_role(r, "authorization.default_role")?;
        builder = builder.default_role(Some(r.get_ref().clone()));
    }

    let mut clients = Vec::new();
    for (i, c) in raw.clients.iter().enumerate() {
        let key = format!("clients[{i}]");
        if c.id.get_ref().is_empty()
            || clients
                .iter()
                .any(|x: &mcp_guard_auth::clients::Client| x.id == *c.id.get_ref())
        {
            return Err(src.error(
                c.id.span(),
                format!("{key}.id"),
                format!("empty or duplicate client id `{}`", c.id.get_ref()),
            ));
        }
        if !mcp_guard_auth::clients::check_hash(c.secret_hash.get_ref()) {
            // The value is not echoed: it might be a plaintext secret pasted by mistake.
            let mut e = src.error(
                c.secret_hash.span(),
                format!("{key}.secret_hash"),
                "not an argon2 PHC string",
            );
            e.help = Some("use `mcp-guard client add ID`, which stores only the hash and prints the secret once".into());
            return Err(e);
        }
        for (j, r) in c.roles.iter().enumerate() {
            known_role(r, &format!("{key}.roles[{j}]"))?;
        }
        clients.push(mcp_guard_auth::clients::Client {
            id: c.id.get_ref().clone(),
            secret_hash: c.secret_hash.get_ref().clone(),
            roles: c.roles.iter().map(|r| r.get_ref().clone()).collect(),
            scopes: c.scopes.clone(),
            may_introspect: c.introspect,
        });
    }

    let mut warnings = Vec::new();
    let mut policy_count = 0;
    let mut policy_ids = std::collections::HashSet::new();
    let mut unique = |src: &Source<'_>, p: &Spanned<RawPolicy>, key: String| {
        let id = &p.get_ref().id;
        if policy_ids.insert(id.get_ref().clone()) {
            Ok(())
        } else {
            Err(src.error(
                id.span(),
                key,
                format!("duplicate policy id `{}`", id.get_ref()),
            ))
        }
    };
    // What the policies read from attribute providers, so only those providers run.
    let mut reads: Vec<attributes::Read> = Vec::new();
    let mut note_reads = |p: &Policy| {
        for path in p.attribute_paths() {
            if let Some(root) = path.provider() {
                reads.push((root.to_owned(), p.id.clone(), path.as_str().to_owned()));
            }
        }
    };
    for p in &raw.policies {
        unique(src, p, format!("policies[{policy_count}].id"))?;
        let compiled = policy(src, p, "policies", policy_count, &groups)?;
        note_reads(&compiled);
        builder = builder.policy(compiled);
        policy_count += 1;
    }
    for file in &auth.policy_files {
        let path = match base {
            Some(b) => b.join(file.get_ref()),
            None => PathBuf::from(file.get_ref()),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            src.error(
                file.span(),
                "authorization.policy_files",
                format!("cannot read `{}`: {e}", path.display()),
            )
        })?;
        let psrc = Source {
            name: path.display().to_string(),
            text: &text,
        };
        let pf: RawPolicyFile = toml::from_str(&text).map_err(|e| psrc.toml_error(&e))?;
        for (i, p) in pf.policies.iter().enumerate() {
            unique(&psrc, p, format!("policies[{i}].id"))?;
            let compiled = policy(&psrc, p, "policies", i, &groups)?;
            note_reads(&compiled);
            builder = builder.policy(compiled);
            policy_count += 1;
        }
    }
    if mode == Mode::Rbac {
        // Policies are not used, so neither is anything they read.
        reads.clear();
    }
    if mode == Mode::Rbac && policy_count > 0 {
        warnings.push(format!(
            "{policy_count} ABAC policies are defined but `authorization.mode` is `rbac`: they are not used"
        ));
    }
    if mode == Mode::Abac && policy_count == 0 {
        warnings.push(
            "`authorization.mode` is `abac` and no policy is defined: everything is denied".into(),
        );
    }

    let authorizer = builder.groups(groups).build().map_err(|e| ConfigError {
        file: src.name.clone(),
        line: 0,
        column: 0,
        key: String::new(),
        message: e.to_string(),
        help: None,
    })?;

    let public_methods = auth
        .public_methods
        .iter()
        .map(|m| m.get_ref().clone())
        .collect();

    let relative = |p: &str| match base {
        Some(b) => b.join(p),
        None => PathBuf::from(p),
    };
    let token = match &raw.token {
        None => TokenSettings::default(),
        Some(t) => TokenSettings {
            issuer: t.issuer.clone(),
            audience: t.audience.clone(),
            access_token_expiry: duration(
                src,
                t.access_token_expiry.as_ref(),
                "token.access_token_expiry",
                3_600,
            )?,
            refresh_token_expiry: duration(
                src,
                t.refresh_token_expiry.as_ref(),
                "token.refresh_token_expiry",
                7 * 86_400,
            )?,
            secret_env: t.secret_env.clone().unwrap_or_else(|| "JWT_SECRET".into()),
            algorithm: match &t.algorithm {
                None => "EdDSA".into(),
                Some(a) if ["EdDSA", "ES256", "RS256", "HS256"].contains(&a.get_ref().as_str()) => {
                    a.get_ref().clone()
                }
                Some(a) => {
                    let mut e = src.error(
                        a.span(),
                        "token.algorithm",
                        format!("unsupported signing algorithm `{}`", a.get_ref()),
                    );
                    e.help = Some("use `EdDSA` (default), `ES256`, `RS256` (with `private_key_file`) or `HS256` (secret from `secret_env`)".into());
                    return Err(e);
                }
            },
            private_key_file: t.private_key_file.as_ref().map(|f| relative(f.get_ref())),
            leeway: duration(src, t.leeway.as_ref(), "token.leeway", 30)?,
            max_token_bytes: t.max_token_bytes.unwrap_or(8 * 1024),
        },
    };
    if token.algorithm == "RS256" && token.private_key_file.is_none() {
        let span = raw
            .token
            .as_ref()
            .and_then(|t| t.algorithm.as_ref())
            .map_or(0..0, Spanned::span);
        let mut e = src.error(
            span,
            "token.algorithm",
            "`RS256` needs `token.private_key_file`",
        );
        e.help = Some(
            "mcp-guard generates EdDSA and ES256 keys itself; RSA keys come from a PEM file".into(),
        );
        return Err(e);
    }
    let server = serving::server(src, raw.server.as_ref(), &relative)?;
    let store_path = match raw.store.as_ref().and_then(|s| s.path.as_ref()) {
        None => Some(relative("mcp-guard.db")),
        Some(p) if p.get_ref() == ":memory:" => None,
        Some(p) => Some(relative(p.get_ref())),
    };
    let audit = match raw.audit.as_ref() {
        None => AuditTarget::default(),
        Some(a) => AuditTarget {
            path: match a.path.as_ref().map(|p| p.get_ref().as_str()) {
                None | Some("stderr") => AuditPath::Stderr,
                Some("stdout") => AuditPath::Stdout,
                Some(p) => AuditPath::File(relative(p)),
            },
            max_bytes: a.max_bytes.unwrap_or(AuditTarget::default().max_bytes),
            keep: a.keep.unwrap_or(AuditTarget::default().keep),
        },
    };
    let mut issuers = Vec::new();
    for (i, x) in raw.issuers.iter().enumerate() {
        let key = format!("issuers[{i}]");
        if origin_of(x.issuer.get_ref()).is_none() && !x.issuer.get_ref().starts_with("urn:") {
            return Err(src.error(
                x.issuer.span(),
                format!("{key}.issuer"),
                format!("invalid issuer `{}`", x.issuer.get_ref()),
            ));
        }
        if x.algorithms.get_ref().is_empty() {
            let mut e = src.error(
                x.algorithms.span(),
                format!("{key}.algorithms"),
                "list the algorithms this issuer signs with",
            );
            e.help = Some("e.g. `algorithms = [\"RS256\"]`; `none` is never accepted".into());
            return Err(e);
        }
        for a in x.algorithms.get_ref() {
            if mcp_guard_auth::token::parse_alg(a).is_none() {
                let mut e = src.error(
                    x.algorithms.span(),
                    format!("{key}.algorithms"),
                    format!("unknown or refused algorithm `{a}`"),
                );
                e.help =
                    Some("HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA".into());
                return Err(e);
            }
        }
        let keys = match (&x.jwks_file, &x.public_key_file, &x.secret_env) {
            (Some(f), None, None) => IssuerKeys::JwksFile(relative(f.get_ref())),
            (None, Some(f), None) => {
                IssuerKeys::PublicKeyFile(relative(f.get_ref()), x.kid.clone())
            }
            (None, None, Some(v)) => IssuerKeys::SecretEnv(v.clone()),
            _ => {
                let mut e = src.error(
                    x.issuer.span(),
                    key,
                    "give exactly one of `jwks_file`, `public_key_file`, `secret_env`",
                );
                e.help = Some(
                    "keys come only from configuration; remote JWKS fetching is not supported yet"
                        .into(),
                );
                return Err(e);
            }
        };
        issuers.push(ExternalIssuer {
            issuer: x.issuer.get_ref().clone(),
            audiences: x.audiences.clone(),
            algorithms: x.algorithms.get_ref().clone(),
            keys,
            roles_claim: x.roles_claim.clone().unwrap_or_else(|| "roles".into()),
            require_typ: x.require_typ.clone(),
        });
    }

    let session = serving::session(src, raw.session.as_ref())?;
    let mut gateway_secrets = vec![token.secret_env.as_str(), TOKEN_ENV];
    gateway_secrets.extend(issuers.iter().filter_map(|x| match &x.keys {
        IssuerKeys::SecretEnv(v) => Some(v.as_str()),
        _ => None,
    }));
    let upstream = serving::upstream(src, raw.upstream.as_ref(), &relative, &gateway_secrets)?;
    let attributes = attributes::settings(
        src,
        &raw.attributes,
        auth.attribute_timeout.as_ref(),
        &relative,
        &reads,
        &attributes::Known {
            gateway_secrets: &gateway_secrets,
            issuers: &issuers
                .iter()
                .map(|x| x.issuer.as_str())
                .collect::<Vec<_>>(),
        },
        &mut warnings,
    )?;
    let stdio = serving::stdio(
        src,
        raw.stdio.as_ref(),
        &relative,
        &gateway_secrets,
        &known_role,
    )?;
    let metrics_bind = match raw.metrics.as_ref().and_then(|m| m.bind.as_ref()) {
        None => None,
        Some(b) => Some(b.get_ref().parse().map_err(|_| {
            let mut e = src.error(
                b.span(),
                "metrics.bind",
                format!("invalid address `{}`", b.get_ref()),
            );
            e.help = Some("an IP address and a port, e.g. `127.0.0.1:9464`".into());
            e
        })?),
    };

    Ok(Config {
        source: src.name.clone(),
        path: None,
        authorizer,
        public_methods,
        deny_mode,
        token,
        session,
        server,
        upstream,
        stdio,
        metrics_bind,
        store_path,
        audit,
        clients,
        issuers,
        attributes,
        warnings,
    })
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            issuer: None,
            audience: None,
            access_token_expiry: Duration::from_secs(3_600),
            refresh_token_expiry: Duration::from_secs(7 * 86_400),
            secret_env: "JWT_SECRET".into(),
            algorithm: "EdDSA".into(),
            private_key_file: None,
            leeway: Duration::from_secs(30),
            max_token_bytes: 8 * 1024,
        }
    }
}

fn check_group_name(src: &Source<'_>, name: &str, key: &str) -> Result<(), ConfigError> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Ok(());
    }
    let at = src.text.find(name).unwrap_or(0);
    let mut e = src.error(at..at, key, format!("invalid group name `{name}`"));
    e.help = Some("group names hold letters, digits, `_` and `-`".into());
    Err(e)
}

/// `scheme://host[:port]` of an absolute http(s) URL, or `None` when it is not one.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return None;
    }
    Some(format!("{scheme}://{authority}"))
}

/// Parses a duration such as `30s`, `5m`, `1h`, `7d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3_600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn duration(
    src: &Source<'_>,
    value: Option<&Spanned<String>>,
    key: &str,
    default_secs: u64,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(Duration::from_secs(default_secs)),
        Some(v) => parse_duration(v.get_ref()).ok_or_else(|| {
            let mut e = src.error(v.span(), key, format!("invalid duration `{}`", v.get_ref()));
            e.help =
                Some("write a positive whole number and a unit: `30s`, `5m`, `1h`, `7d`".into());
            e
        }),
    }
}

fn pattern_error(
    src: &Source<'_>,
    s: &Spanned<String>,
    key: &str,
    e: &mcp_guard_core::PatternError,
) -> ConfigError {
    let at = src.inside_string(&s.span(), e.span.start);
    let mut err = src.error(at..at, key, e.to_string());
    err.help = e.help();
    err
}

fn patterns(
    src: &Source<'_>,
    list: &[Spanned<String>],
    key: &str,
    groups: &Groups,
) -> Result<Vec<Pattern>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let key = format!("{key}[{i}]");
            let p = Pattern::parse(s.get_ref()).map_err(|e| pattern_error(src, s, &key, &e))?;
            if let mcp_guard_core::pattern::TargetPattern::Group(g) = p.target()
                && !groups.defines(p.domain().key(), g)
            {
                let at = src.inside_string(&s.span(), s.get_ref().rfind('@').unwrap_or(0));
                let mut e = src.error(
                    at..at,
                    key,
                    format!("unknown group `@{g}` in `{}`", s.get_ref()),
                );
                e.help = Some(format!(
                    "define it under `[groups.{}.{g}]`",
                    match p.domain().key() {
                        "*" => "tools",
                        d => d,
                    }
                ));
                return Err(e);
            }
            Ok(p)
        })
        .collect()
}

fn target_set(
    src: &Source<'_>,
    list: &[Spanned<String>],
    key: &str,
) -> Result<TargetSet, ConfigError> {
    for (i, s) in list.iter().enumerate() {
        if let Err(e) = mcp_guard_core::pattern::TargetPattern::parse_plain(s.get_ref()) {
            return Err(pattern_error(src, s, &format!("{key}[{i}]"), &e));
        }
    }
    TargetSet::parse(list.iter().map(|s| s.get_ref().as_str()))
        .map_err(|e| src.error(0..0, key, e.to_string()))
}

fn policy(
    src: &Source<'_>,
    p: &Spanned<RawPolicy>,
    table: &str,
    index: usize,
    groups: &Groups,
) -> Result<Policy, ConfigError> {
    let key = format!("{table}[{index}]");
    let raw = p.get_ref();
    let effect = Effect::parse(raw.effect.get_ref()).ok_or_else(|| {
        let mut e = src.error(
            raw.effect.span(),
            format!("{key}.effect"),
            format!("unknown effect `{}`", raw.effect.get_ref()),
        );
        e.help = Some("use `allow` or `deny`".into());
        e
    })?;
    for (i, r) in raw.resources.iter().enumerate() {
        if let Err(e) = mcp_guard_core::abac::parse_resource(r.get_ref()) {
            let mut err = src.error(r.span(), format!("{key}.resources[{i}]"), e.to_string());
            err.help = Some("a resource is `<domain>:<target>`, e.g. `tools:deploy` or `resources:file:///srv/*`".into());
            return Err(err);
        }
        if let Ok((domain, mcp_guard_core::pattern::TargetPattern::Group(g))) =
            mcp_guard_core::abac::parse_resource(r.get_ref())
            && !groups.defines(domain.key(), &g)
        {
            return Err(src.error(
                r.span(),
                format!("{key}.resources[{i}]"),
                format!("unknown group `@{g}`"),
            ));
        }
    }
    let conditions = raw
        .conditions
        .iter()
        .enumerate()
        .map(|(i, c)| condition(src, c, &format!("{key}.conditions[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let resources: Vec<&str> = raw.resources.iter().map(|r| r.get_ref().as_str()).collect();
    let actions: Vec<&str> = raw.actions.iter().map(|a| a.get_ref().as_str()).collect();
    Policy::new(
        raw.id.get_ref().clone(),
        raw.name.clone(),
        effect,
        &resources,
        &actions,
        conditions,
    )
    .map_err(|e| src.error(p.span(), key, e.to_string()))
}

fn condition(
    src: &Source<'_>,
    c: &Spanned<RawCondition>,
    key: &str,
) -> Result<Condition, ConfigError> {
    let raw = c.get_ref();
    let groups = [raw.any.is_some(), raw.all.is_some(), raw.not.is_some()];
    let compare = raw.attribute.is_some() || raw.operator.is_some() || raw.value.is_some();
    let kinds = groups.iter().filter(|b| **b).count() + usize::from(compare);
    if kinds != 1 {
        let mut e = src.error(
            c.span(),
            key,
            "a condition is exactly one of: a comparison, `any`, `all`, `not`",
        );
        e.help = Some("write `{ attribute = \"subject.department\", operator = \"equals\", value = \"eng\" }`, or `{ any = [ ... ] }`".into());
        return Err(e);
    }
    if let Some(items) = &raw.any {
        return Ok(Condition::Any(children(src, items, &format!("{key}.any"))?));
    }
    if let Some(items) = &raw.all {
        return Ok(Condition::All(children(src, items, &format!("{key}.all"))?));
    }
    if let Some(inner) = &raw.not {
        return Ok(Condition::Not(Box::new(condition(
            src,
            inner,
            &format!("{key}.not"),
        )?)));
    }
    let (Some(attribute), Some(operator)) = (&raw.attribute, &raw.operator) else {
        return Err(src.error(
            c.span(),
            key,
            "a comparison needs `attribute` and `operator`",
        ));
    };
    let path = AttributePath::parse(attribute.get_ref())
        .map_err(|e| src.error(attribute.span(), format!("{key}.attribute"), e.to_string()))?;
    let value = raw.value.as_ref().map(|v| toml_to_json(v.get_ref()));
    let operator = Operator::parse(operator.get_ref(), value).map_err(|e| {
        let span = match e.kind.field() {
            "operator" => operator.span(),
            _ => raw.value.as_ref().map_or(c.span(), Spanned::span),
        };
        src.error(span, format!("{key}.{}", e.kind.field()), e.to_string())
    })?;
    Ok(Condition::Compare { path, operator })
}

fn children(
    src: &Source<'_>,
    items: &[Spanned<RawCondition>],
    key: &str,
) -> Result<Vec<Condition>, ConfigError> {
    items
        .iter()
        .enumerate()
        .map(|(i, c)| condition(src, c, &format!("{key}[{i}]")))
        .collect()
}

/// Converts a TOML value to JSON (datetimes become strings).
pub fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests;
