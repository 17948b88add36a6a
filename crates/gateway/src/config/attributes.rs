//! `[attributes.NAME]`: the attribute providers that ABAC policies read as `NAME.<path>`
//! (DESIGN.md section 6). Checked and built with the rest of the file, so `config check` reads the
//! static files and a reload replaces providers and caches with everything else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use mcp_guard_auth::attributes::{
    ClaimsProvider, HttpMethod, HttpProvider, HttpSpec, Provider, Providers, StaticFormat,
    StaticProvider, StaticTable, UserinfoProvider, UserinfoSpec,
};
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source, origin_of, parse_duration};

/// One `[attributes.NAME]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub kind: Spanned<String>,
    pub file: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub cache_ttl: Option<Spanned<String>>,
    pub cache_size: Option<Spanned<u64>>,
    pub max_bytes: Option<Spanned<usize>>,
    pub bearer_token_env: Option<Spanned<String>>,
    pub issuer: Option<Spanned<String>>,
}

/// What the rest of the file says that providers are checked against.
pub(super) struct Known<'a> {
    /// Environment variables holding the gateway's own secrets: never a provider's credential.
    pub gateway_secrets: &'a [&'a str],
    /// The external issuers (`[[issuers]]`) whose tokens the gateway accepts.
    pub issuers: &'a [&'a str],
}

/// The attribute providers a start runs.
#[derive(Clone, Debug)]
pub struct AttributeSettings {
    /// The configured providers that some policy reads; the others never run.
    pub providers: Providers,
    /// How long one decision waits for all of them together; a provider still running then is
    /// unavailable.
    pub timeout: Duration,
}

impl Default for AttributeSettings {
    fn default() -> Self {
        AttributeSettings {
            providers: Providers::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// An attribute a policy reads from a provider: `(provider, policy id, path)`.
pub(super) type Read = (String, String, String);

/// Names a provider may not take: the roots the core itself fills in.
const RESERVED: [&str; 4] = ["subject", "resource", "action", "environment"];

/// Checks and builds `[attributes.*]`. `reads` lists what the active policies read; `warnings`
/// gets providers nobody reads and reads of providers nobody configured.
pub(super) fn settings(
    src: &Source<'_>,
    raw: &IndexMap<String, Spanned<RawProvider>>,
    timeout: Option<&Spanned<String>>,
    relative: &dyn Fn(&str) -> PathBuf,
    reads: &[Read],
    known: &Known<'_>,
    warnings: &mut Vec<String>,
) -> Result<AttributeSettings, ConfigError> {
    let timeout = match timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => short_duration(src, t, "authorization.attribute_timeout")?,
    };
    let mut list: Vec<Arc<dyn Provider>> = Vec::new();
    for (name, p) in raw {
        let key = format!("attributes.{name}");
        let provider = provider(src, name, p.get_ref(), &key, relative, known)?;
        match reads.iter().find(|(root, _, _)| root == name) {
            Some(_) => list.push(provider),
            None => warnings.push(format!(
                "attribute provider `{name}` is configured but no active policy reads it: it never runs"
            )),
        }
    }
    let mut missing: Vec<&Read> = Vec::new();
    for r in reads {
        if !raw.contains_key(&r.0) && !missing.iter().any(|m| m.0 == r.0) {
            missing.push(r);
        }
    }
    for (root, policy, path) in missing {
        warnings.push(format!(
            "policy `{policy}` reads `{path}`, but no `[attributes.{root}]` is configured: that condition is always unknown"
        ));
    }
    Ok(AttributeSettings {
        providers: Providers::new(list),
        timeout,
    })
}

fn provider(
    src: &Source<'_>,
    name: &str,
    p: &RawProvider,
    key: &str,
    relative: &dyn Fn(&str) -> PathBuf,
    known: &Known<'_>,
) -> Result<Arc<dyn Provider>, ConfigError> {
    let kind = p.kind.get_ref().as_str();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid || RESERVED.contains(&name) {
        let mut e = src.error(
            p.kind.span(),
            key,
            format!("invalid attribute provider name `{name}`"),
        );
        e.help = Some(format!(
            "a provider name holds letters, digits, `_` and `-`, and is none of: {}",
            RESERVED.join(", ")
        ));
        return Err(e);
    }
    // Which options each kind takes; any other one given is a mistake worth reporting.
    let allowed: &[&str] = match kind {
        "static" => &["file"],
        "claims" => &[],
        "http" => &[
            "url",
            "method",
            "timeout",
            "cache_ttl",
            "cache_size",
            "max_bytes",
            "bearer_token_env",
        ],
        "userinfo" => &[
            "url",
            "issuer",
            "timeout",
            "cache_ttl",
            "cache_size",
            "max_bytes",
        ],
        other => {
            let mut e = src.error(
                p.kind.span(),
                format!("{key}.kind"),
                format!("unknown attribute provider kind `{other}`"),
            );
            e.help = Some("use `static`, `claims`, `http` or `userinfo`".into());
            return Err(e);
        }
    };
    let given: [(&str, Option<std::ops::Range<usize>>); 9] = [
        ("file", p.file.as_ref().map(Spanned::span)),
        ("url", p.url.as_ref().map(Spanned::span)),
        ("method", p.method.as_ref().map(Spanned::span)),
        ("timeout", p.timeout.as_ref().map(Spanned::span)),
        ("cache_ttl", p.cache_ttl.as_ref().map(Spanned::span)),
        ("cache_size", p.cache_size.as_ref().map(Spanned::span)),
        ("max_bytes", p.max_bytes.as_ref().map(Spanned::span)),
        (
            "bearer_token_env",
            p.bearer_token_env.as_ref().map(Spanned::span),
        ),
        ("issuer", p.issuer.as_ref().map(Spanned::span)),
    ];
    for (option, span) in given {
        if let Some(span) = span
            && !allowed.contains(&option)
        {
            return Err(src.error(
                span,
                format!("{key}.{option}"),
                format!("`{option}` does not apply to a `{kind}` provider"),
            ));
        }
    }
    match kind {
        "static" => {
            let Some(file) = &p.file else {
                let mut e = src.error(p.kind.span(), key, "a `static` provider needs `file`");
                e.help = Some("a TOML or JSON file of `[[subjects]]` entries".into());
                return Err(e);
            };
            let path = relative(file.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                src.error(
                    file.span(),
                    format!("{key}.file"),
                    format!("cannot read `{}`: {e}", path.display()),
                )
            })?;
            let table = StaticTable::parse(&text, StaticFormat::of_path(&path)).map_err(|e| {
                ConfigError {
                    file: path.display().to_string(),
                    line: e.line,
                    column: e.column,
                    key: e.key,
                    message: e.message,
                    help: Some(
                        "entries are `[[subjects]]` with `subject`, optional `issuer`, and an `attributes` table"
                            .into(),
                    ),
                }
            })?;
            Ok(Arc::new(StaticProvider::new(name, table)))
        }
        "claims" => Ok(Arc::new(ClaimsProvider::new(name))),
        "userinfo" => userinfo(src, name, p, key, known.issuers),
        _ => http(src, name, p, key, known.gateway_secrets),
    }
}

/// The timeout, cache and size options `http` and `userinfo` share.
struct Limits {
    timeout: Option<Duration>,
    cache_ttl: Option<Duration>,
    cache_size: Option<u64>,
    max_bytes: Option<usize>,
}

fn limits(src: &Source<'_>, p: &RawProvider, key: &str) -> Result<Limits, ConfigError> {
    let duration = |v: &Option<Spanned<String>>, option: &str| {
        v.as_ref()
            .map(|t| short_duration(src, t, &format!("{key}.{option}")))
            .transpose()
    };
    let max_bytes = match &p.max_bytes {
        Some(n) if *n.get_ref() == 0 => {
            return Err(src.error(
                n.span(),
                format!("{key}.max_bytes"),
                "`max_bytes` must be above 0",
            ));
        }
        n => n.as_ref().map(|n| *n.get_ref()),
    };
    Ok(Limits {
        timeout: duration(&p.timeout, "timeout")?,
        cache_ttl: duration(&p.cache_ttl, "cache_ttl")?,
        cache_size: p.cache_size.as_ref().map(|n| *n.get_ref()),
        max_bytes,
    })
}

fn userinfo(
    src: &Source<'_>,
    name: &str,
    p: &RawProvider,
    key: &str,
    issuers: &[&str],
) -> Result<Arc<dyn Provider>, ConfigError> {
    let Some(url) = &p.url else {
        let mut e = src.error(p.kind.span(), key, "a `userinfo` provider needs `url`");
        e.help = Some("the identity provider's OpenID Connect userinfo endpoint".into());
        return Err(e);
    };
    let Some(issuer) = p.issuer.as_ref().filter(|i| !i.get_ref().is_empty()) else {
        let mut e = src.error(p.kind.span(), key, "a `userinfo` provider needs `issuer`");
        e.help = Some(
            "the `[[issuers]]` issuer whose tokens may be sent to it; no other token ever is"
                .into(),
        );
        return Err(e);
    };
    let mut spec = UserinfoSpec::new(url.get_ref().clone(), issuer.get_ref().clone());
    let l = limits(src, p, key)?;
    spec.timeout = l.timeout.unwrap_or(spec.timeout);
    spec.cache_ttl = l.cache_ttl.unwrap_or(spec.cache_ttl);
    spec.cache_size = l.cache_size.unwrap_or(spec.cache_size);
    spec.max_bytes = l.max_bytes.unwrap_or(spec.max_bytes);
    // Only the URL can make this fail: the issuer is not empty.
    let provider = UserinfoProvider::new(name, spec).map_err(|_| {
        let mut e = src.error(
            url.span(),
            format!("{key}.url"),
            format!("invalid userinfo URL `{}`", url.get_ref()),
        );
        e.help = Some(
            "the caller's token is sent there: an https URL, or http to 127.0.0.1 or [::1]".into(),
        );
        e
    })?;
    if !issuers.contains(&issuer.get_ref().as_str()) {
        let mut e = src.error(
            issuer.span(),
            format!("{key}.issuer"),
            format!("`{}` is not a configured issuer", issuer.get_ref()),
        );
        e.help = Some("name the `issuer` of one of the `[[issuers]]` entries".into());
        return Err(e);
    }
    Ok(Arc::new(provider))
}

fn http(
    src: &Source<'_>,
    name: &str,
    p: &RawProvider,
    key: &str,
    gateway_secrets: &[&str],
) -> Result<Arc<dyn Provider>, ConfigError> {
    let Some(url) = &p.url else {
        return Err(src.error(p.kind.span(), key, "an `http` provider needs `url`"));
    };
    if origin_of(url.get_ref()).is_none() {
        let mut e = src.error(
            url.span(),
            format!("{key}.url"),
            format!("invalid URL `{}`", url.get_ref()),
        );
        e.help = Some("an absolute http or https URL".into());
        return Err(e);
    }
    let mut spec = HttpSpec::new(url.get_ref().clone());
    if let Some(m) = &p.method {
        spec.method = match m.get_ref().to_ascii_uppercase().as_str() {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            other => {
                let mut e = src.error(
                    m.span(),
                    format!("{key}.method"),
                    format!("unsupported method `{other}`"),
                );
                e.help = Some("use `GET` (subject in the query) or `POST` (in a JSON body)".into());
                return Err(e);
            }
        };
    }
    let l = limits(src, p, key)?;
    spec.timeout = l.timeout.unwrap_or(spec.timeout);
    spec.cache_ttl = l.cache_ttl.unwrap_or(spec.cache_ttl);
    spec.cache_size = l.cache_size.unwrap_or(spec.cache_size);
    spec.max_bytes = l.max_bytes.unwrap_or(spec.max_bytes);
    let token = match &p.bearer_token_env {
        None => None,
        Some(var) => {
            let k = format!("{key}.bearer_token_env");
            if gateway_secrets.contains(&var.get_ref().as_str()) {
                let mut e = src.error(
                    var.span(),
                    k,
                    format!("`{}` holds one of the gateway's own secrets", var.get_ref()),
                );
                e.help = Some("give the attribute service its own credential".into());
                return Err(e);
            }
            // The value is never echoed; only whether it is set.
            Some(std::env::var(var.get_ref()).map_err(|_| {
                src.error(
                    var.span(),
                    k,
                    format!("the environment variable `{}` is not set", var.get_ref()),
                )
            })?)
        }
    };
    let provider = HttpProvider::new(name, spec, token.as_deref())
        .map_err(|e| src.error(url.span(), format!("{key}.url"), e.to_string()))?;
    Ok(Arc::new(provider))
}

/// A duration in `ms`, `s`, `m`, `h` or `d`.
fn short_duration(
    src: &Source<'_>,
    v: &Spanned<String>,
    key: &str,
) -> Result<Duration, ConfigError> {
    let text = v.get_ref().trim();
    let parsed = match text.strip_suffix("ms") {
        Some(n) => n
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Duration::from_millis),
        None => parse_duration(text),
    };
    parsed.ok_or_else(|| {
        let mut e = src.error(v.span(), key, format!("invalid duration `{}`", v.get_ref()));
        e.help = Some("a positive whole number and a unit: `500ms`, `2s`, `5m`, `1h`".into());
        e
    })
}

#[cfg(test)]
mod tests {
    use super::super::load_str;

    const POLICY: &str = r#"
[authorization]
mode = "abac"
attribute_timeout = "750ms"

[[policies]]
id = "deployers"
effect = "allow"
resources = ["tools:deploy"]
actions = ["execute"]
conditions = [{ attribute = "team.deployer", operator = "equals", value = true }]
"#;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn only_providers_that_policies_read_run() {
        let dir = dir_with(&[(
            "team.toml",
            "[[subjects]]\nsubject = \"alice\"\nattributes = { deployer = true }\n",
        )]);
        let text = format!(
            "{POLICY}\n[attributes.team]\nkind = \"static\"\nfile = \"team.toml\"\n\n[attributes.claims]\nkind = \"claims\"\n"
        );
        let c = load_str("t.toml", &text, Some(dir.path())).unwrap();
        let names: Vec<&str> = c.attributes.providers.names().collect();
        assert_eq!(names, ["team"]);
        assert_eq!(c.attributes.timeout, std::time::Duration::from_millis(750));
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("`claims` is configured but no active policy reads it")),
            "{:?}",
            c.warnings
        );

        // In `rbac` mode policies are not used, so no provider runs.
        let rbac = text.replace("mode = \"abac\"", "mode = \"rbac\"");
        let c = load_str("t.toml", &rbac, Some(dir.path())).unwrap();
        assert!(c.attributes.providers.is_empty());
    }

    #[test]
    fn a_read_of_an_unconfigured_provider_is_a_warning() {
        let c = load_str("t.toml", POLICY, None).unwrap();
        assert!(c.attributes.providers.is_empty());
        assert!(
            c.warnings.iter().any(|w| w.contains(
                "policy `deployers` reads `team.deployer`, but no `[attributes.team]` is configured"
            )),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn static_file_errors_name_that_file_and_line() {
        let dir = dir_with(&[(
            "team.toml",
            "[[subjects]]\nsubject = \"alice\"\nattributes = { deployer = }\n",
        )]);
        let text =
            format!("{POLICY}\n[attributes.team]\nkind = \"static\"\nfile = \"team.toml\"\n");
        let e = load_str("t.toml", &text, Some(dir.path())).unwrap_err();
        assert!(e.file.ends_with("team.toml"), "{e}");
        assert_eq!(e.line, 3, "{e}");

        let text = text.replace("team.toml", "missing.toml");
        let e = load_str("t.toml", &text, Some(dir.path())).unwrap_err();
        assert_eq!(e.file, "t.toml");
        assert_eq!(e.key, "attributes.team.file");
        assert!(e.message.starts_with("cannot read"), "{e}");
    }

    #[test]
    fn names_options_and_secrets_are_checked() {
        let cases = [
            (
                "[attributes.subject]\nkind = \"claims\"\n",
                "invalid attribute provider name `subject`",
            ),
            (
                "[attributes.team]\nkind = \"static\"\n",
                "a `static` provider needs `file`",
            ),
            (
                "[attributes.hr]\nkind = \"http\"\n",
                "an `http` provider needs `url`",
            ),
            (
                "[attributes.hr]\nkind = \"http\"\nurl = \"ftp://x/y\"\n",
                "invalid URL `ftp://x/y`",
            ),
            (
                "[attributes.hr]\nkind = \"http\"\nurl = \"http://x/y\"\nmethod = \"PUT\"\n",
                "unsupported method `PUT`",
            ),
            (
                "[attributes.hr]\nkind = \"http\"\nurl = \"http://x/y\"\nmax_bytes = 0\n",
                "`max_bytes` must be above 0",
            ),
            (
                "[attributes.hr]\nkind = \"http\"\nurl = \"http://x/y\"\nbearer_token_env = \"JWT_SECRET\"\n",
                "`JWT_SECRET` holds one of the gateway's own secrets",
            ),
            (
                "[attributes.hr]\nkind = \"http\"\nurl = \"http://x/y\"\nbearer_token_env = \"MCP_GUARD_SURELY_UNSET_9f\"\n",
                "the environment variable `MCP_GUARD_SURELY_UNSET_9f` is not set",
            ),
            (
                "[attributes.hr]\nkind = \"claims\"\ntimeout = \"1s\"\n",
                "`timeout` does not apply",
            ),
        ];
        for (text, want) in cases {
            let e = load_str("t.toml", text, None).unwrap_err();
            assert!(e.message.contains(want), "{text}: {e}");
            assert!(e.line > 0, "{text}: {e}");
        }
        let ok = "[attributes.hr]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/attrs\"\nmethod = \"post\"\ntimeout = \"250ms\"\ncache_ttl = \"5m\"\ncache_size = 0\n";
        load_str("t.toml", ok, None).unwrap();
    }

    #[test]
    fn userinfo_needs_an_issuer_and_a_url_its_tokens_may_go_to() {
        const ISSUER: &str = "[[issuers]]\nissuer = \"https://idp.example\"\nalgorithms = [\"EdDSA\"]\njwks_file = \"idp.json\"\n\n";
        let cases = [
            (
                "[attributes.idp]\nkind = \"userinfo\"\nissuer = \"https://idp.example\"\n",
                "a `userinfo` provider needs `url`",
                "attributes.idp",
            ),
            (
                "[attributes.idp]\nkind = \"userinfo\"\nurl = \"https://idp.example/userinfo\"\n",
                "a `userinfo` provider needs `issuer`",
                "attributes.idp",
            ),
            (
                "[attributes.idp]\nkind = \"userinfo\"\nurl = \"https://idp.example/userinfo\"\nissuer = \"\"\n",
                "a `userinfo` provider needs `issuer`",
                "attributes.idp",
            ),
            (
                "[attributes.idp]\nkind = \"userinfo\"\nurl = \"http://idp.example/userinfo\"\nissuer = \"https://idp.example\"\n",
                "invalid userinfo URL `http://idp.example/userinfo`",
                "attributes.idp.url",
            ),
            (
                "[attributes.idp]\nkind = \"userinfo\"\nurl = \"https://other.example/userinfo\"\nissuer = \"https://other.example\"\n",
                "`https://other.example` is not a configured issuer",
                "attributes.idp.issuer",
            ),
            (
                "[attributes.idp]\nkind = \"userinfo\"\nurl = \"https://idp.example/userinfo\"\nissuer = \"https://idp.example\"\nbearer_token_env = \"X\"\n",
                "`bearer_token_env` does not apply to a `userinfo` provider",
                "attributes.idp.bearer_token_env",
            ),
            (
                "[attributes.hr]\nkind = \"http\"\nurl = \"http://x/y\"\nissuer = \"https://idp.example\"\n",
                "`issuer` does not apply to a `http` provider",
                "attributes.hr.issuer",
            ),
        ];
        for (text, want, key) in cases {
            let e = load_str("t.toml", &format!("{ISSUER}{text}"), None).unwrap_err();
            assert!(e.message.contains(want), "{text}: {e}");
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(e.line > 0, "{text}: {e}");
        }
        for url in [
            "https://idp.example/userinfo",
            "http://127.0.0.1:9/userinfo",
            "http://[::1]:9/userinfo",
        ] {
            let ok = format!(
                "{ISSUER}[attributes.idp]\nkind = \"userinfo\"\nurl = \"{url}\"\nissuer = \"https://idp.example\"\ntimeout = \"250ms\"\ncache_ttl = \"5m\"\ncache_size = 100\nmax_bytes = 4096\n"
            );
            load_str("t.toml", &ok, None).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }
}
