//! `mcp-guard policy test FILE`: run a table of `[[case]]`s and report the failures.

use mcp_guard_core::ToolCatalog;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use toml::Spanned;

use super::request::{RequestInput, decide, set_path};
use super::{Exit, PolicyTestArgs};
use crate::config::{self, line_col, toml_to_json};
use crate::tokens::now_unix;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default, rename = "case")]
    cases: Vec<Spanned<Case>>,
}

/// One decision case; the same format users and the project's fixtures write.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    subject: String,
    issuer: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// Attributes by root: `{ subject = { department = "eng" }, hr = { level = 3 } }`.
    attributes: Option<toml::Table>,
    /// Attribute providers to treat as failed.
    #[serde(default)]
    unavailable: Vec<String>,
    /// `environment.time` in Unix seconds (default: now).
    time: Option<i64>,
    method: String,
    name: Option<String>,
    uri: Option<String>,
    arguments: Option<toml::Table>,
    /// The named tool's annotations, as the upstream's `tools/list` would give them.
    annotations: Option<toml::Table>,
    expect: Spanned<String>,
    /// A substring the decision's reason must contain.
    reason: Option<String>,
}

struct Report {
    description: String,
    line: usize,
    expected: String,
    got: String,
    reason: String,
    failure: Option<String>,
}

pub(super) fn run(args: &PolicyTestArgs) -> Exit {
    let config = match config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let name = args.file.display().to_string();
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {name}: cannot read the file: {e}");
            return Exit::Usage;
        }
    };
    let file: CaseFile = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            let (line, col) = line_col(&text, e.span().map_or(0, |s| s.start));
            eprintln!("error: {name}:{line}:{col}: {}", e.message().trim());
            return Exit::Usage;
        }
    };
    if file.cases.is_empty() {
        eprintln!("error: {name}: no [[case]] tables");
        return Exit::Usage;
    }
    let mut reports = Vec::new();
    for case in &file.cases {
        let line = line_col(&text, case.span().start).0;
        match run_case(&config, case.get_ref(), line) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("error: {name}:{line}: {e}");
                return Exit::Usage;
            }
        }
    }
    let failed = reports.iter().filter(|r| r.failure.is_some()).count();
    let passed = reports.len() - failed;
    if args.json {
        let cases: Vec<Value> = reports
            .iter()
            .map(|r| {
                json!({
                    "description": r.description, "line": r.line, "expected": r.expected,
                    "got": r.got, "reason": r.reason, "ok": r.failure.is_none(),
                    "failure": r.failure,
                })
            })
            .collect();
        println!(
            "{}",
            json!({"passed": passed, "failed": failed, "cases": cases})
        );
    } else {
        for r in reports.iter().filter(|r| r.failure.is_some()) {
            println!(
                "FAIL {name}:{}: {}: {}",
                r.line,
                r.description,
                r.failure.as_deref().unwrap_or_default()
            );
        }
        println!("{passed} passed, {failed} failed");
    }
    if failed == 0 { Exit::Ok } else { Exit::Fail }
}

fn run_case(config: &config::Config, case: &Case, line: usize) -> Result<Report, String> {
    let expected = case.expect.get_ref().clone();
    if expected != "allow" && expected != "deny" {
        return Err(format!(
            "`expect` must be \"allow\" or \"deny\", not `{expected}`"
        ));
    }
    let mut attributes = Map::new();
    if let Some(table) = &case.attributes {
        for (key, value) in table {
            let value = toml_to_json(value);
            match (key.contains('.'), value) {
                (false, Value::Object(inner)) => {
                    for (k, v) in inner {
                        set_path(&mut attributes, &format!("{key}.{k}"), v)?;
                    }
                }
                (_, v) => set_path(&mut attributes, key, v)?,
            }
        }
    }
    let catalog = case.annotations.as_ref().map(|a| {
        let mut c = ToolCatalog::new();
        if let (Some(name), Value::Object(ann)) =
            (&case.name, toml_to_json(&toml::Value::Table(a.clone())))
        {
            c.insert(name.clone(), ann);
        }
        c
    });
    let input = RequestInput {
        subject: case.subject.clone(),
        issuer: case.issuer.clone(),
        roles: case.roles.clone(),
        permissions: case.permissions.clone(),
        scopes: case.scopes.clone(),
        attributes,
        unavailable: case.unavailable.clone(),
        method: case.method.clone(),
        name: case.name.clone(),
        uri: case.uri.clone(),
        arguments: case
            .arguments
            .as_ref()
            .map(|a| match toml_to_json(&toml::Value::Table(a.clone())) {
                Value::Object(m) => m,
                _ => Map::new(),
            })
            .unwrap_or_default(),
        catalog,
        now_unix: Some(case.time.unwrap_or_else(now_unix)),
    };
    let outcome = decide(config, &input)?;
    let d = &outcome.decision;
    let got = d.verdict.as_str().to_owned();
    let mut haystack = format!("{} {}", d.explain(), d.reason.kind());
    for m in &d.matched {
        haystack.push(' ');
        haystack.push_str(&m.to_string());
    }
    let failure = if got != expected {
        Some(format!("expected {expected}, got {got}: {}", d.explain()))
    } else {
        case.reason
            .as_deref()
            .filter(|want| !haystack.contains(*want))
            .map(|want| {
                format!(
                    "{got} as expected, but the reason does not contain `{want}`: {}",
                    d.explain()
                )
            })
    };
    Ok(Report {
        description: case.description.clone(),
        line,
        expected,
        got,
        reason: d.explain(),
        failure,
    })
}
