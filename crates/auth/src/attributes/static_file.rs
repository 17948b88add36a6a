//! Attributes per subject from a file, loaded with the configuration (and again at each reload).
//!
//! ```toml
//! [[subjects]]
//! subject = "alice"
//! # issuer = "https://idp.example.com"   # omitted: the gateway's own tokens
//! attributes = { deployer = true, level = 3 }
//! ```
//!
//! or the same as JSON, `{"subjects": [{"subject": "alice", "attributes": {...}}]}`. A subject
//! that is not in the file gets an empty object, so each attribute a policy reads is missing and
//! its condition unknown (DESIGN.md section 6): an allow does not apply, a deny does.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

use super::{Asker, AttributesFuture, Provider};

/// The syntax of a static attribute file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaticFormat {
    /// TOML (any name not ending in `.json`).
    Toml,
    /// JSON (`*.json`).
    Json,
}

impl StaticFormat {
    /// The format a file name implies.
    pub fn of_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => StaticFormat::Json,
            _ => StaticFormat::Toml,
        }
    }
}

/// Why a static attribute file was refused; the caller adds the file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticFileError {
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// The entry the error is about (`subjects[2].issuer`), empty for syntax errors.
    pub key: String,
    /// What is wrong (lowercase, no final period).
    pub message: String,
}

impl fmt::Display for StaticFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.key.is_empty() {
            write!(f, " (key `{}`)", self.key)?;
        }
        Ok(())
    }
}

impl std::error::Error for StaticFileError {}

/// The attributes of each `(issuer, subject)`, as read from a file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StaticTable {
    /// Keyed by issuer (`None`: the gateway's own tokens), then subject.
    by_issuer: HashMap<Option<String>, HashMap<String, Value>>,
}

impl StaticTable {
    /// Parses a file's text.
    pub fn parse(text: &str, format: StaticFormat) -> Result<Self, StaticFileError> {
        let doc = match format {
            StaticFormat::Json => {
                serde_json::from_str::<Value>(text).map_err(|e| StaticFileError {
                    line: e.line(),
                    column: e.column(),
                    key: String::new(),
                    message: first_line(&e.to_string()),
                })?
            }
            StaticFormat::Toml => {
                let table = toml::from_str::<toml::Table>(text).map_err(|e| {
                    let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
                    StaticFileError {
                        line,
                        column,
                        key: String::new(),
                        message: e.message().trim().trim_end_matches('.').to_owned(),
                    }
                })?;
                toml_to_json(&toml::Value::Table(table))
            }
        };
        Self::from_value(&doc)
    }

    fn from_value(doc: &Value) -> Result<Self, StaticFileError> {
        let bad = |key: String, message: &str| StaticFileError {
            line: 0,
            column: 0,
            key,
            message: message.to_owned(),
        };
        let Value::Object(top) = doc else {
            return Err(bad(String::new(), "expected a table with `subjects`"));
        };
        if let Some(k) = top.keys().find(|k| *k != "subjects") {
            return Err(bad(k.clone(), "unknown key; expected `subjects`"));
        }
        let entries = match top.get("subjects") {
            None => return Ok(StaticTable::default()),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(bad("subjects".into(), "expected a list of entries")),
        };
        let mut table = StaticTable::default();
        for (i, entry) in entries.iter().enumerate() {
            let key = format!("subjects[{i}]");
            let Value::Object(e) = entry else {
                return Err(bad(key, "expected a table"));
            };
            if let Some(k) = e
                .keys()
                .find(|k| !matches!(k.as_str(), "subject" | "issuer" | "attributes"))
            {
                return Err(bad(
                    format!("{key}.{k}"),
                    "unknown key; expected `subject`, `issuer` or `attributes`",
                ));
            }
            let subject = match e.get("subject") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return Err(bad(format!("{key}.subject"), "expected a non-empty string")),
            };
            let issuer = match e.get("issuer") {
                None => None,
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(_) => return Err(bad(format!("{key}.issuer"), "expected a non-empty string")),
            };
            let attributes = match e.get("attributes") {
                None => Value::Object(Map::new()),
                Some(v @ Value::Object(_)) => v.clone(),
                Some(_) => return Err(bad(format!("{key}.attributes"), "expected a table")),
            };
            let subjects = table.by_issuer.entry(issuer).or_default();
            if subjects.insert(subject, attributes).is_some() {
                return Err(bad(
                    format!("{key}.subject"),
                    "a second entry for the same subject and issuer",
                ));
            }
        }
        Ok(table)
    }

    /// How many subjects it holds.
    pub fn len(&self) -> usize {
        self.by_issuer.values().map(HashMap::len).sum()
    }

    /// Whether it holds no subject.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The attributes of `(issuer, subject)`, if listed.
    pub fn get(&self, issuer: Option<&str>, subject: &str) -> Option<&Value> {
        // `Option<String>` keys cannot be borrowed as `Option<&str>`; look the issuer up by
        // hand rather than allocate per request.
        let subjects = match issuer {
            None => self.by_issuer.get(&None),
            Some(iss) => self
                .by_issuer
                .iter()
                .find(|(k, _)| k.as_deref() == Some(iss))
                .map(|(_, v)| v),
        }?;
        subjects.get(subject)
    }
}

/// A static table under a provider name.
#[derive(Clone, Debug)]
pub struct StaticProvider {
    name: String,
    table: StaticTable,
}

impl StaticProvider {
    /// Serves `table` as `<name>.<path>`.
    pub fn new(name: impl Into<String>, table: StaticTable) -> Self {
        StaticProvider {
            name: name.into(),
            table,
        }
    }
}

impl Provider for StaticProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn attributes<'a>(&'a self, asker: Asker<'a>) -> AttributesFuture<'a> {
        let principal = asker.principal;
        let found = self
            .table
            .get(principal.issuer.as_deref(), &principal.subject)
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        Box::pin(std::future::ready(Ok(found)))
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    // serde_json appends " at line L column C", which the caller reports as a position.
    match line.rfind(" at line ") {
        Some(i) => line[..i].to_owned(),
        None => line.to_owned(),
    }
}

/// The 1-based line and column (in characters) of a byte offset in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// TOML to JSON; datetimes become strings.
fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_guard_core::{AuthMethod, Principal};
    use serde_json::json;

    const TOML: &str = r#"
[[subjects]]
subject = "alice"
attributes = { deployer = true, level = 3 }

[[subjects]]
subject = "alice"
issuer = "https://idp.example"
attributes = { deployer = false }
"#;

    #[tokio::test]
    async fn subjects_by_issuer_and_an_empty_object_for_the_unlisted() {
        let table = StaticTable::parse(TOML, StaticFormat::Toml).unwrap();
        assert_eq!(table.len(), 2);
        let p = StaticProvider::new("team", table);
        let own = Principal::new(None, "alice", AuthMethod::OwnToken);
        assert_eq!(
            p.attributes((&own).into()).await.unwrap(),
            json!({"deployer": true, "level": 3})
        );
        // The same subject from another issuer is another person.
        let ext = Principal::new(
            Some("https://idp.example".into()),
            "alice",
            AuthMethod::ExternalJwt,
        );
        assert_eq!(
            p.attributes((&ext).into()).await.unwrap(),
            json!({"deployer": false})
        );
        let other = Principal::new(
            Some("https://other".into()),
            "alice",
            AuthMethod::ExternalJwt,
        );
        assert_eq!(p.attributes((&other).into()).await.unwrap(), json!({}));
        let bob = Principal::new(None, "bob", AuthMethod::OwnToken);
        assert_eq!(p.attributes((&bob).into()).await.unwrap(), json!({}));
    }

    #[test]
    fn json_files_read_the_same() {
        let json = r#"{"subjects": [{"subject": "alice", "attributes": {"deployer": true}}]}"#;
        let t = StaticTable::parse(json, StaticFormat::Json).unwrap();
        assert_eq!(t.get(None, "alice"), Some(&json!({"deployer": true})));
        assert_eq!(
            StaticFormat::of_path(std::path::Path::new("a/team.JSON")),
            StaticFormat::Json
        );
        assert_eq!(
            StaticFormat::of_path(std::path::Path::new("team.toml")),
            StaticFormat::Toml
        );
    }

    #[test]
    fn bad_files_say_where() {
        let e = StaticTable::parse("[[subjects]]\nsubject = \n", StaticFormat::Toml).unwrap_err();
        assert_eq!(e.line, 2, "{e:?}");
        let e = StaticTable::parse("{\"subjects\": [}", StaticFormat::Json).unwrap_err();
        assert_eq!((e.line, e.column), (1, 15), "{e:?}");
        assert!(!e.message.contains(" at line "), "{e:?}");
        let cases = [
            ("[[subjects]]\nattributes = {}\n", "subjects[0].subject"),
            (
                "[[subjects]]\nsubject = \"a\"\nattributes = 3\n",
                "subjects[0].attributes",
            ),
            (
                "[[subjects]]\nsubject = \"a\"\nrole = \"x\"\n",
                "subjects[0].role",
            ),
            ("users = []\n", "users"),
            (
                "[[subjects]]\nsubject = \"a\"\n[[subjects]]\nsubject = \"a\"\n",
                "subjects[1].subject",
            ),
        ];
        for (text, key) in cases {
            let e = StaticTable::parse(text, StaticFormat::Toml).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }
}
