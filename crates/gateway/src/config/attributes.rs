//! `[attributes.NAME]`: the attribute providers that ABAC policies read as `NAME.<path>`
//! (DESIGN.md section 6). Checked and built with the rest of the file, so `config check` reads the
//! static files and a reload replaces providers and caches with everything else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use mcp_guard_auth::attributes::{
    ClaimsProvider, HttpMethod, HttpProvider, HttpSpec, Provider, Providers, StaticFormat,
    StaticProvider, StaticTable,
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
    gateway_secrets: &[&str],
    warnings: &mut Vec<String>,
) -> Result<AttributeSettings, ConfigError> {
    let timeout = match timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => short_duration(src, t, "authorization.attribute_timeout")?,
    };
    let mut list: Vec<Arc<dyn Provider>> = Vec::new();
    for (name, p) in raw {
        let key = format!("attributes.{name}");
        let provider = provider(src, name, p.get_ref(), &key, relative, gateway_secrets)?;
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
    gateway_secrets: &[&str],
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
        "userinfo" => {
            let mut e = src.error(
                p.kind.span(),
                format!("{key}.kind"),
                "the `userinfo` attribute provider is not available yet",
            );
            e.help = Some(
                "it comes with external identity providers; meanwhile `claims` exposes what the token carries, and `http` asks a configured URL".into(),
            );
            return Err(e);
        }
        other => {
            let mut e = src.error(
                p.kind.span(),
                format!("{key}.kind"),
                format!("unknown attribute provider kind `{other}`"),
            );
            e.help = Some("use `static`, `claims` or `http`".into());
            return Err(e);
        }
    };
    let given: [(&str, Option<std::ops::Range<usize>>); 8] = [
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
        _ => http(src, name, p, key, gateway_secrets),
    }
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
    if let Some(t) = &p.timeout {
        spec.timeout = short_duration(src, t, &format!("{key}.timeout"))?;
    }
    if let Some(t) = &p.cache_ttl {
        spec.cache_ttl = short_duration(src, t, &format!("{key}.cache_ttl"))?;
    }
    if let Some(n) = &p.cache_size {
        spec.cache_size = *n.get_ref();
    }
    if let Some(n) = &p.max_bytes {
        if *n.get_ref() == 0 {
            return Err(src.error(
                n.span(),
                format!("{key}.max_bytes"),
                "`max_bytes` must be above 0",
            ));
        }
        spec.max_bytes = *n.get_ref();
    }
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
}
