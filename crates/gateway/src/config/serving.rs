//! The sections that only `serve` reads: `[server]`, `[upstream]`, `[session]`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use toml::Spanned;

use super::raw::{RawServer, RawSession, RawStdio, RawUpstream};
use super::{ConfigError, Source, duration, origin_of};

/// Where and how the gateway listens (DESIGN.md section 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    /// The canonical resource URL, e.g. `https://mcp.example.com/mcp`; never derived from `Host`.
    pub public_url: String,
    /// Its origin, `scheme://host[:port]`: the default issuer of the gateway's tokens.
    pub base_url: String,
    /// The path of the public URL, where MCP is served (`/mcp`).
    pub path: String,
    /// The listening address.
    pub bind: SocketAddr,
    /// Host names (no port, lowercase) a request's `Host` may name.
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) a browser request may come from.
    pub allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// The largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// The most messages in one batch (2025-03-26 only).
    pub max_batch: usize,
    /// How long one request may wait for the upstream (504 beyond).
    pub request_timeout: Duration,
    /// The most requests served at once; more wait.
    pub max_concurrent_requests: usize,
    /// How long in-flight requests may take to finish after SIGTERM or SIGINT.
    pub shutdown_grace: Duration,
    /// TLS certificate chain and key, PEM; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// PEM files of the server's TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Private key (PKCS#8, SEC1 or PKCS#1).
    pub key_file: PathBuf,
}

const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080/mcp";

impl Default for ServerSettings {
    fn default() -> Self {
        base_settings()
    }
}

/// The settings of the default public URL, spelled out; a test checks they are what
/// [`from_public_url`] derives from it.
fn base_settings() -> ServerSettings {
    ServerSettings {
        public_url: DEFAULT_PUBLIC_URL.into(),
        base_url: "http://127.0.0.1:8080".into(),
        path: "/mcp".into(),
        bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
        allowed_hosts: loopback_hosts(),
        allowed_origins: vec!["http://127.0.0.1:8080".into()],
        trusted_proxies: Vec::new(),
        max_body_bytes: 4 << 20,
        max_batch: 64,
        request_timeout: Duration::from_secs(300),
        max_concurrent_requests: 512,
        shutdown_grace: Duration::from_secs(10),
        tls: None,
    }
}

fn loopback_hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
}

/// The host of `scheme://host[:port]`, lowercase, without the port.
pub fn host_of(origin: &str) -> Option<String> {
    let authority = origin.split_once("://")?.1;
    Some(strip_port(authority).to_ascii_lowercase())
}

/// `host[:port]` without the port (IPv6 literals keep their brackets).
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn port_of(base_url: &str) -> u16 {
    let authority = base_url.split_once("://").map_or("", |(_, a)| a);
    let after_host = if authority.starts_with('[') {
        authority.find(']').map_or("", |i| &authority[i + 1..])
    } else {
        authority.find(':').map_or("", |i| &authority[i..])
    };
    match after_host.strip_prefix(':').and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None if base_url.starts_with("https:") => 443,
        None => 80,
    }
}

fn from_public_url(url: &str) -> Option<ServerSettings> {
    let base_url = origin_of(url)?;
    let path = match &url[base_url.len()..] {
        "" => "/".to_owned(),
        p if p.starts_with('/') && !p.contains(['?', '#']) => p.to_owned(),
        _ => return None,
    };
    let host = host_of(&base_url)?;
    let mut allowed_hosts = loopback_hosts();
    if !allowed_hosts.contains(&host) {
        allowed_hosts.insert(0, host);
    }
    Some(ServerSettings {
        public_url: url.to_owned(),
        bind: SocketAddr::from(([127, 0, 0, 1], port_of(&base_url))),
        allowed_origins: vec![base_url.clone()],
        base_url,
        path,
        allowed_hosts,
        ..base_settings()
    })
}

pub(super) fn server(
    src: &Source<'_>,
    raw: Option<&RawServer>,
    relative: &dyn Fn(&str) -> PathBuf,
) -> Result<ServerSettings, ConfigError> {
    let Some(raw) = raw else {
        return Ok(ServerSettings::default());
    };
    let mut s = match &raw.public_url {
        None => ServerSettings::default(),
        Some(u) => from_public_url(u.get_ref()).ok_or_else(|| {
            let mut e = src.error(
                u.span(),
                "server.public_url",
                format!("invalid URL `{}`", u.get_ref()),
            );
            e.help = Some(
                "an absolute http or https URL with a host and a path, e.g. `https://mcp.example.com/mcp`"
                    .into(),
            );
            e
        })?,
    };
    if let Some(b) = &raw.bind {
        s.bind = b.get_ref().parse().map_err(|_| {
            let mut e = src.error(
                b.span(),
                "server.bind",
                format!("invalid address `{}`", b.get_ref()),
            );
            e.help = Some("an IP address and a port, e.g. `127.0.0.1:8080` or `[::]:8443`".into());
            e
        })?;
    }
    if let Some(hosts) = &raw.allowed_hosts {
        s.allowed_hosts = hosts
            .iter()
            .map(|h| strip_port(h).to_ascii_lowercase())
            .collect();
    }
    if let Some(origins) = &raw.allowed_origins {
        let mut list = Vec::new();
        for o in origins {
            match origin_of(o.get_ref()) {
                Some(origin) if origin == *o.get_ref() => list.push(origin),
                _ => {
                    let mut e = src.error(
                        o.span(),
                        "server.allowed_origins",
                        format!("invalid origin `{}`", o.get_ref()),
                    );
                    e.help = Some("an origin is `scheme://host[:port]`, no path".into());
                    return Err(e);
                }
            }
        }
        s.allowed_origins = list;
    }
    for p in &raw.trusted_proxies {
        s.trusted_proxies.push(p.get_ref().parse().map_err(|_| {
            src.error(
                p.span(),
                "server.trusted_proxies",
                format!("invalid IP address `{}`", p.get_ref()),
            )
        })?);
    }
    if let Some(n) = raw.max_body_bytes {
        s.max_body_bytes = n;
    }
    if let Some(n) = raw.max_batch {
        s.max_batch = n;
    }
    if let Some(n) = raw.max_concurrent_requests {
        s.max_concurrent_requests = n.max(1);
    }
    s.shutdown_grace = duration(
        src,
        raw.shutdown_grace.as_ref(),
        "server.shutdown_grace",
        s.shutdown_grace.as_secs(),
    )?;
    s.request_timeout = duration(
        src,
        raw.request_timeout.as_ref(),
        "server.request_timeout",
        s.request_timeout.as_secs(),
    )?;
    s.tls = match (&raw.tls_cert_file, &raw.tls_key_file) {
        (None, None) => None,
        (Some(c), Some(k)) => Some(TlsFiles {
            cert_file: relative(c.get_ref()),
            key_file: relative(k.get_ref()),
        }),
        (Some(f), None) | (None, Some(f)) => {
            let mut e = src.error(
                f.span(),
                "server",
                "`tls_cert_file` and `tls_key_file` go together",
            );
            e.help = Some("give both PEM files to serve HTTPS, or neither for plain HTTP".into());
            return Err(e);
        }
    };
    Ok(s)
}

/// The MCP server behind the gateway (DESIGN.md section 9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// A child process speaking MCP on stdin/stdout.
    Stdio(Box<StdioUpstream>),
    /// A streamable-HTTP MCP server.
    Http(HttpUpstream),
}

/// How to start a stdio child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StdioUpstream {
    /// The program; `mcp-guard` means this very executable (for the bundled demo server).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory (default: the gateway's).
    pub cwd: Option<PathBuf>,
    /// The child's whole environment besides `inherit_env`: literal values.
    pub env: IndexMap<String, String>,
    /// Child variables whose values come from the gateway's environment (child name -> gateway
    /// name), for the upstream's own secrets.
    pub env_from: IndexMap<String, String>,
    /// Variables passed through unchanged from the gateway's environment.
    pub inherit_env: Vec<String>,
    /// The most child processes alive at once.
    pub max_children: usize,
    /// Children per principal for stateless (2026-07-28) traffic.
    pub pool_per_principal: usize,
}

/// A streamable-HTTP upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUpstream {
    /// Its MCP endpoint.
    pub url: String,
    /// The environment variable holding the gateway's own bearer token for it, if any.
    pub bearer_token_env: Option<String>,
}

/// The bundled demo server, run by this executable.
pub const SELF_COMMAND: &str = "mcp-guard";

pub(super) fn upstream(
    src: &Source<'_>,
    raw: Option<&RawUpstream>,
    relative: &dyn Fn(&str) -> PathBuf,
    gateway_secrets: &[&str],
) -> Result<Upstream, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Upstream::Stdio(Box::new(demo_upstream())));
    };
    match (&raw.command, &raw.url) {
        (Some(c), None) => {
            let inherit_env = child_env(
                src,
                "upstream",
                raw.inherit_env.as_ref(),
                &raw.env_from,
                c.span(),
                gateway_secrets,
            )?;
            Ok(Upstream::Stdio(Box::new(StdioUpstream {
                command: c.get_ref().clone(),
                args: raw.args.clone(),
                cwd: raw.cwd.as_ref().map(|d| relative(d)),
                env: raw.env.clone(),
                env_from: raw.env_from.clone(),
                inherit_env,
                max_children: raw.max_children.unwrap_or(100).max(1),
                pool_per_principal: raw.pool_per_principal.unwrap_or(2).max(1),
            })))
        }
        (None, Some(u)) => {
            if origin_of(u.get_ref()).is_none() {
                return Err(src.error(
                    u.span(),
                    "upstream.url",
                    format!("invalid URL `{}`", u.get_ref()),
                ));
            }
            Ok(Upstream::Http(HttpUpstream {
                url: u.get_ref().clone(),
                bearer_token_env: raw.bearer_token_env.clone(),
            }))
        }
        (Some(c), Some(_)) => {
            let mut e = src.error(c.span(), "upstream", "give `command` or `url`, not both");
            e.help =
                Some("`command` starts a stdio child; `url` names a streamable-HTTP server".into());
            Err(e)
        }
        (None, None) => Err(src.error(0..0, "upstream", "give `command` or `url`")),
    }
}

/// The variables a child inherits (`inherit_env`, default [`default_inherit`]), checked along
/// with `env_from`: neither may name one of the gateway's own secrets.
fn child_env(
    src: &Source<'_>,
    key: &str,
    inherit_env: Option<&Vec<Spanned<String>>>,
    env_from: &IndexMap<String, String>,
    fallback: std::ops::Range<usize>,
    gateway_secrets: &[&str],
) -> Result<Vec<String>, ConfigError> {
    for (name, spanned) in inherit_env
        .into_iter()
        .flatten()
        .map(|s| (s.get_ref().as_str(), Some(s)))
        .chain(env_from.values().map(|v| (v.as_str(), None)))
    {
        if gateway_secrets.contains(&name) {
            let span = spanned.map_or(fallback.clone(), Spanned::span);
            let field = if spanned.is_some() {
                "inherit_env"
            } else {
                "env_from"
            };
            let mut e = src.error(
                span,
                format!("{key}.{field}"),
                format!("`{name}` holds one of the gateway's own secrets"),
            );
            e.help =
                Some("the child never gets the gateway's secrets; give it its own variable".into());
            return Err(e);
        }
    }
    Ok(inherit_env.map_or_else(default_inherit, |v| {
        v.iter().map(|s| s.get_ref().clone()).collect()
    }))
}

/// `[stdio]`: what `mcp-guard stdio` needs besides the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StdioSettings {
    /// The principal when `MCP_GUARD_TOKEN` is not set; `None`: a token is required.
    pub identity: Option<LocalIdentity>,
    /// The child's working directory (default: the guard's).
    pub cwd: Option<PathBuf>,
    /// Literal variables for the child.
    pub env: IndexMap<String, String>,
    /// Child variables whose values come from the guard's environment (child name -> guard name).
    pub env_from: IndexMap<String, String>,
    /// Variables passed through unchanged.
    pub inherit_env: Vec<String>,
}

impl Default for StdioSettings {
    fn default() -> Self {
        StdioSettings {
            identity: None,
            cwd: None,
            env: IndexMap::new(),
            env_from: IndexMap::new(),
            inherit_env: default_inherit(),
        }
    }
}

impl StdioSettings {
    /// How to start `command` with `args` under these settings.
    pub fn child(&self, command: &str, args: &[String]) -> StdioUpstream {
        StdioUpstream {
            command: command.to_owned(),
            args: args.to_vec(),
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            env_from: self.env_from.clone(),
            inherit_env: self.inherit_env.clone(),
            max_children: 1,
            pool_per_principal: 1,
        }
    }
}

/// The configured local principal of `mcp-guard stdio` (`[stdio] identity`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalIdentity {
    /// Its subject; its issuer is always [`LOCAL_ISSUER`], so no token can claim it.
    pub subject: String,
    /// Its roles (defined roles only).
    pub roles: Vec<String>,
}

/// The issuer of the configured local identity: not a URL, so no token's `iss` can equal it.
pub const LOCAL_ISSUER: &str = "urn:mcp-guard:local";

/// Checks that a role named at a key is defined.
pub(super) type RoleCheck<'a> = dyn Fn(&Spanned<String>, &str) -> Result<(), ConfigError> + 'a;

pub(super) fn stdio(
    src: &Source<'_>,
    raw: Option<&RawStdio>,
    relative: &dyn Fn(&str) -> PathBuf,
    gateway_secrets: &[&str],
    known_role: &RoleCheck<'_>,
) -> Result<StdioSettings, ConfigError> {
    let Some(raw) = raw else {
        return Ok(StdioSettings::default());
    };
    let identity = match &raw.identity {
        None => None,
        Some(i) => {
            if i.subject.get_ref().trim().is_empty() {
                return Err(src.error(
                    i.subject.span(),
                    "stdio.identity.subject",
                    "the subject is empty",
                ));
            }
            for (j, r) in i.roles.iter().enumerate() {
                known_role(r, &format!("stdio.identity.roles[{j}]"))?;
            }
            Some(LocalIdentity {
                subject: i.subject.get_ref().clone(),
                roles: i.roles.iter().map(|r| r.get_ref().clone()).collect(),
            })
        }
    };
    let inherit_env = child_env(
        src,
        "stdio",
        raw.inherit_env.as_ref(),
        &raw.env_from,
        0..0,
        gateway_secrets,
    )?;
    Ok(StdioSettings {
        identity,
        cwd: raw.cwd.as_ref().map(|d| relative(d)),
        env: raw.env.clone(),
        env_from: raw.env_from.clone(),
        inherit_env,
    })
}

fn default_inherit() -> Vec<String> {
    ["PATH", "HOME", "LANG", "TZ"].map(String::from).to_vec()
}

/// `mcp-guard demo stdio`, the bundled demo server.
pub fn demo_upstream() -> StdioUpstream {
    StdioUpstream {
        command: SELF_COMMAND.into(),
        args: vec!["demo".into(), "stdio".into()],
        cwd: None,
        env: IndexMap::new(),
        env_from: IndexMap::new(),
        inherit_env: default_inherit(),
        max_children: 100,
        pool_per_principal: 2,
    }
}

/// Session settings (the seed's `session` section and DESIGN.md section 9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    /// Idle timeout.
    pub timeout: Duration,
    /// Absolute lifetime, however active.
    pub max_lifetime: Duration,
    /// The most live sessions; the least recently active is evicted beyond it.
    pub max_sessions: usize,
    /// The most live sessions of one principal; its own least recently active goes beyond it.
    pub max_per_principal: usize,
    /// How often expired sessions are swept.
    pub cleanup_interval: Duration,
    /// Server-to-client messages held per session until a stream takes them.
    pub queue_capacity: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            timeout: Duration::from_secs(30 * 60),
            max_lifetime: Duration::from_secs(24 * 3_600),
            max_sessions: 1000,
            max_per_principal: 32,
            cleanup_interval: Duration::from_secs(5 * 60),
            queue_capacity: 256,
        }
    }
}

pub(super) fn session(
    src: &Source<'_>,
    raw: Option<&RawSession>,
) -> Result<SessionSettings, ConfigError> {
    let d = SessionSettings::default();
    let Some(s) = raw else {
        return Ok(d);
    };
    Ok(SessionSettings {
        timeout: duration(
            src,
            s.timeout.as_ref(),
            "session.timeout",
            d.timeout.as_secs(),
        )?,
        max_lifetime: duration(
            src,
            s.max_lifetime.as_ref(),
            "session.max_lifetime",
            d.max_lifetime.as_secs(),
        )?,
        max_sessions: s.max_sessions.unwrap_or(d.max_sessions).max(1),
        max_per_principal: s.max_per_principal.unwrap_or(d.max_per_principal).max(1),
        cleanup_interval: duration(
            src,
            s.cleanup_interval.as_ref(),
            "session.cleanup_interval",
            d.cleanup_interval.as_secs(),
        )?,
        queue_capacity: s.queue_capacity.unwrap_or(d.queue_capacity).max(1),
    })
}

/// Resolves `mcp-guard` to this executable, anything else as given (PATH lookup at spawn).
pub fn resolve_command(command: &str) -> PathBuf {
    if command == SELF_COMMAND
        && let Ok(me) = std::env::current_exe()
    {
        return me;
    }
    Path::new(command).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_server_settings_come_from_the_default_url() {
        let s = from_public_url(DEFAULT_PUBLIC_URL).expect("the default URL parses");
        assert_eq!(s, base_settings());
    }

    #[test]
    fn hosts_and_ports() {
        let s = from_public_url("https://MCP.example.com/api/mcp").expect("parses");
        assert_eq!(s.path, "/api/mcp");
        assert_eq!(s.bind.port(), 443);
        assert_eq!(s.allowed_hosts[0], "mcp.example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("localhost:80"), "localhost");
        assert!(from_public_url("http://h/p?q=1").is_none());
    }
}
