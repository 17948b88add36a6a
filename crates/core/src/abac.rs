//! Attribute-based policies (DESIGN.md section 6): the seed's model with three-valued conditions.
//!
//! A condition is true, false or unknown (a missing attribute, a failed provider, a value of the
//! wrong type). An allow policy applies only when its conditions are true; a deny policy applies
//! when they are true *or unknown*. So a failure can only take access away.
//!
//! At list time tool arguments do not exist yet. A condition reading `resource.arguments.*` may
//! then come out either way, and outcomes are tracked as sets: an allow policy counts when some
//! outcome is true, a deny policy only when no outcome is false.

use std::fmt;

use regex::Regex;
use serde_json::Value;

use crate::decision::{UnknownAttribute, UnknownReason};
use crate::pattern::{PatternError, PatternErrorKind, Segment, TargetPattern, parse_segment};

/// `allow` or `deny`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Grants when it applies.
    Allow,
    /// Refuses when it applies; overrides every allow.
    Deny,
}

impl Effect {
    /// Parses `allow` or `deny`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Effect::Allow),
            "deny" => Some(Effect::Deny),
            _ => None,
        }
    }
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// The root of an attribute path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Root {
    Subject,
    Resource,
    Action,
    Environment,
    Provider(Box<str>),
}

/// A compiled attribute path such as `subject.department` or `resource.arguments.env`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributePath {
    pub(crate) root: Root,
    pub(crate) rest: Box<[Box<str>]>,
    text: Box<str>,
}

impl AttributePath {
    /// Parses a dotted path; the root is `subject`, `resource`, `action`, `environment` or the
    /// name of an attribute provider.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        let bad = |why: &str| ConditionError::new(ConditionErrorKind::BadPath(why.to_owned()));
        if text.is_empty() {
            return Err(bad("the path is empty"));
        }
        let mut parts = text.split('.');
        let root_text = parts.next().unwrap_or_default();
        let rest: Vec<Box<str>> = parts.map(Into::into).collect();
        if rest.iter().any(|p| p.is_empty()) {
            return Err(bad("a path segment is empty"));
        }
        if !root_text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || root_text.is_empty()
        {
            return Err(bad("the root must be a name"));
        }
        let root = match root_text {
            "subject" => Root::Subject,
            "resource" => Root::Resource,
            "action" => Root::Action,
            "environment" => Root::Environment,
            other => Root::Provider(other.into()),
        };
        match root {
            Root::Action if !rest.is_empty() => return Err(bad("`action` has no fields")),
            Root::Subject | Root::Resource | Root::Environment if rest.is_empty() => {
                return Err(bad("name a field, e.g. `subject.department`"));
            }
            Root::Environment
                if !matches!(&*rest[0], "time" | "weekday" | "hour" | "ip" | "user_agent")
                    || rest.len() > 1 =>
            {
                return Err(bad(
                    "environment fields are `time`, `weekday`, `hour`, `ip` and `user_agent`",
                ));
            }
            _ => {}
        }
        Ok(AttributePath {
            root,
            rest: rest.into(),
            text: text.into(),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The attribute provider it reads, when its root is not `subject`, `resource`, `action` or
    /// `environment`.
    pub fn provider(&self) -> Option<&str> {
        match &self.root {
            Root::Provider(name) => Some(name),
            _ => None,
        }
    }
}

/// A comparison operator with its operand, checked at load.
#[derive(Clone, Debug)]
pub enum Operator {
    /// Equal (numbers compare numerically).
    Equals(Value),
    /// Not equal; unknown stays unknown.
    NotEquals(Value),
    /// An array holding the value, or a string holding the substring.
    Contains(Value),
    /// A string matching the regex (unanchored, as the seed: write `^...$` to anchor).
    Matches(Regex),
    /// A number greater than the operand.
    GreaterThan(f64),
    /// A number less than the operand.
    LessThan(f64),
    /// A number in `[min, max]`.
    InRange(f64, f64),
    /// Equal to one of the listed values.
    In(Vec<Value>),
    /// Present (`true`, the default) or absent (`false`).
    Exists(bool),
}

/// The operator names accepted, in the seed's order first.
pub const OPERATORS: [&str; 9] = [
    "equals",
    "contains",
    "matches",
    "greater_than",
    "less_than",
    "in_range",
    "in",
    "not_equals",
    "exists",
];

/// The longest regex source accepted by `matches`.
const MAX_REGEX_LEN: usize = 1024;

impl Operator {
    /// Compiles an operator and its operand.
    pub fn parse(name: &str, value: Option<Value>) -> Result<Self, ConditionError> {
        let bad_value = |why: String| ConditionError::new(ConditionErrorKind::BadValue(why));
        let need =
            |v: Option<Value>| v.ok_or_else(|| bad_value(format!("`{name}` needs a `value`")));
        let number = |v: Option<Value>| -> Result<f64, ConditionError> {
            need(v)?
                .as_f64()
                .ok_or_else(|| bad_value(format!("`{name}` needs a number")))
        };
        Ok(match name {
            "equals" => Operator::Equals(need(value)?),
            "not_equals" => Operator::NotEquals(need(value)?),
            "contains" => Operator::Contains(need(value)?),
            "matches" => {
                let v = need(value)?;
                let Some(src) = v.as_str() else {
                    return Err(bad_value("`matches` needs a regex string".into()));
                };
                if src.len() > MAX_REGEX_LEN {
                    return Err(bad_value(format!(
                        "regex longer than {MAX_REGEX_LEN} bytes"
                    )));
                }
                let re = regex::RegexBuilder::new(src)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        // The regex crate's message spans lines (source, caret, error): keep the
                        // last line, which says what is wrong.
                        let text = e.to_string();
                        let last = text.lines().rev().find(|l| !l.trim().is_empty());
                        let last = last.unwrap_or_default().trim();
                        let last = last.trim_start_matches("error: ").to_owned();
                        ConditionError::new(ConditionErrorKind::BadRegex(last))
                    })?;
                Operator::Matches(re)
            }
            "greater_than" => Operator::GreaterThan(number(value)?),
            "less_than" => Operator::LessThan(number(value)?),
            "in_range" => {
                let v = need(value)?;
                let min = v.get("min").and_then(Value::as_f64);
                let max = v.get("max").and_then(Value::as_f64);
                match (min, max) {
                    (Some(min), Some(max)) if min <= max => Operator::InRange(min, max),
                    (Some(_), Some(_)) => return Err(bad_value("`min` is above `max`".into())),
                    _ => {
                        return Err(bad_value(
                            "`in_range` needs `{ min = <number>, max = <number> }`".into(),
                        ));
                    }
                }
            }
            "in" => match need(value)? {
                Value::Array(items) => Operator::In(items),
                _ => return Err(bad_value("`in` needs an array".into())),
            },
            "exists" => match value {
                None => Operator::Exists(true),
                Some(Value::Bool(b)) => Operator::Exists(b),
                Some(_) => return Err(bad_value("`exists` takes `true` or `false`".into())),
            },
            other => {
                return Err(ConditionError::new(ConditionErrorKind::UnknownOperator(
                    other.to_owned(),
                )));
            }
        })
    }
}

/// A condition tree.
#[derive(Clone, Debug)]
pub enum Condition {
    /// `attribute operator value`.
    Compare {
        /// What to read.
        path: AttributePath,
        /// How to compare it.
        operator: Operator,
    },
    /// Every condition must hold (true for an empty list).
    All(Vec<Condition>),
    /// Some condition must hold (false for an empty list).
    Any(Vec<Condition>),
    /// The condition must not hold; unknown stays unknown.
    Not(Box<Condition>),
}

/// Why a condition did not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ConditionError {
    /// What is wrong.
    pub kind: ConditionErrorKind,
}

impl ConditionError {
    fn new(kind: ConditionErrorKind) -> Self {
        ConditionError { kind }
    }
}

/// The kinds of [`ConditionError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionErrorKind {
    /// Not one of [`OPERATORS`].
    #[error(
        "unknown operator `{0}`; expected one of: equals, not_equals, contains, matches, greater_than, less_than, in_range, in, exists"
    )]
    UnknownOperator(String),
    /// A malformed attribute path.
    #[error("invalid attribute path: {0}")]
    BadPath(String),
    /// The operand does not suit the operator.
    #[error("invalid value: {0}")]
    BadValue(String),
    /// The regex of `matches` did not compile.
    #[error("invalid regex: {0}")]
    BadRegex(String),
}

impl ConditionErrorKind {
    /// The condition field the error is about: `attribute`, `operator` or `value`.
    pub fn field(&self) -> &'static str {
        match self {
            ConditionErrorKind::UnknownOperator(_) => "operator",
            ConditionErrorKind::BadPath(_) => "attribute",
            ConditionErrorKind::BadValue(_) | ConditionErrorKind::BadRegex(_) => "value",
        }
    }
}

/// One ABAC policy, compiled.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Its id, named in decisions.
    pub id: String,
    /// A human name.
    pub name: Option<String>,
    /// Allow or deny.
    pub effect: Effect,
    /// `(domain, target)` pairs it applies to.
    pub(crate) resources: Vec<(Segment, TargetPattern)>,
    /// Actions it applies to.
    pub(crate) actions: Vec<Segment>,
    /// All of these must hold.
    pub(crate) conditions: Condition,
}

/// Why a policy's `resources` or `actions` entry did not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyTargetError {
    /// A resource entry `<domain>:<target>` is malformed.
    #[error("invalid resource `{text}`: {kind}")]
    Resource {
        /// The entry.
        text: String,
        /// What is wrong.
        kind: PatternErrorKind,
    },
    /// A resource entry without a colon.
    #[error("invalid resource `{0}`: expected `<domain>:<target>`")]
    ResourceShape(String),
    /// An action entry is malformed.
    #[error("invalid action `{text}`: {kind}")]
    Action {
        /// The entry.
        text: String,
        /// What is wrong.
        kind: PatternErrorKind,
    },
    /// `resources` or `actions` is empty: the policy would apply to nothing.
    #[error("`{0}` is empty: the policy would never apply")]
    Empty(&'static str),
}

impl Policy {
    /// Compiles a policy from the seed's fields.
    pub fn new(
        id: impl Into<String>,
        name: Option<String>,
        effect: Effect,
        resources: &[&str],
        actions: &[&str],
        conditions: Vec<Condition>,
    ) -> Result<Self, PolicyTargetError> {
        if resources.is_empty() {
            return Err(PolicyTargetError::Empty("resources"));
        }
        if actions.is_empty() {
            return Err(PolicyTargetError::Empty("actions"));
        }
        let resources = resources
            .iter()
            .map(|r| parse_resource(r))
            .collect::<Result<Vec<_>, _>>()?;
        let actions = actions
            .iter()
            .map(|a| {
                parse_segment(a, "action", 0).map_err(|(kind, _)| PolicyTargetError::Action {
                    text: (*a).to_owned(),
                    kind,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            id: id.into(),
            name,
            effect,
            resources,
            actions,
            conditions: Condition::All(conditions),
        })
    }

    /// Every attribute path its conditions read, in order.
    pub fn attribute_paths(&self) -> Vec<&AttributePath> {
        let mut out = Vec::new();
        self.conditions.collect_paths(&mut out);
        out
    }

    /// The group names its resources refer to, with their domain key.
    pub fn group_refs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.resources.iter().filter_map(|(d, t)| match t {
            TargetPattern::Group(g) => Some((d.key(), &**g)),
            _ => None,
        })
    }
}

/// Parses a policy resource `<domain>:<target>` (the target keeps any further colons).
pub fn parse_resource(text: &str) -> Result<(Segment, TargetPattern), PolicyTargetError> {
    let err = |kind| PolicyTargetError::Resource {
        text: text.to_owned(),
        kind,
    };
    let Some((domain, target)) = text.split_once(':') else {
        // `*` alone means every domain and target.
        if text == "*" {
            return Ok((Segment::Any, TargetPattern::Glob(glob_any())));
        }
        return Err(PolicyTargetError::ResourceShape(text.to_owned()));
    };
    let domain = parse_segment(domain, "domain", 0).map_err(|(k, _)| err(k))?;
    let target = TargetPattern::parse(target, true).map_err(|(k, _)| err(k))?;
    Ok((domain, target))
}

fn glob_any() -> crate::pattern::Glob {
    match TargetPattern::parse("*", false) {
        Ok(TargetPattern::Glob(g)) => g,
        // INVARIANT: "*" always parses as a glob.
        _ => unreachable!("`*` is a glob"),
    }
}

impl From<PatternError> for PolicyTargetError {
    fn from(e: PatternError) -> Self {
        PolicyTargetError::Resource {
            text: e.text,
            kind: e.kind,
        }
    }
}

// ===== evaluation =====

/// A set of possible outcomes of a condition: true, false, unknown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcomes(u8);

impl Outcomes {
    pub(crate) const TRUE: Outcomes = Outcomes(1);
    pub(crate) const FALSE: Outcomes = Outcomes(2);
    pub(crate) const UNKNOWN: Outcomes = Outcomes(4);
    /// Could go either way (tool arguments at list time).
    pub(crate) const FREE: Outcomes = Outcomes(1 | 2);

    fn has(self, o: Outcomes) -> bool {
        self.0 & o.0 != 0
    }

    fn from_bool(b: bool) -> Self {
        if b { Self::TRUE } else { Self::FALSE }
    }

    /// Kleene AND, lifted to sets.
    fn and(self, other: Outcomes) -> Outcomes {
        let (t, f, u) = (Self::TRUE, Self::FALSE, Self::UNKNOWN);
        let mut r = 0;
        if self.has(f) || other.has(f) {
            r |= f.0;
        }
        if (self.has(u) && (other.has(u) || other.has(t)))
            || (other.has(u) && (self.has(u) || self.has(t)))
        {
            r |= u.0;
        }
        if self.has(t) && other.has(t) {
            r |= t.0;
        }
        Outcomes(r)
    }

    /// Kleene OR, lifted to sets.
    fn or(self, other: Outcomes) -> Outcomes {
        self.not().and(other.not()).not()
    }

    fn not(self) -> Outcomes {
        let t = self.0 & 1;
        let f = (self.0 >> 1) & 1;
        Outcomes((self.0 & 4) | (t << 1) | f)
    }

    /// Whether an allow policy with these outcomes grants.
    pub(crate) fn allow_applies(self) -> bool {
        self.has(Self::TRUE)
    }

    /// Whether a deny policy with these outcomes applies: unless it may come out false.
    pub(crate) fn deny_applies(self) -> bool {
        !self.has(Self::FALSE) && self.0 != 0
    }
}

impl fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.has(Self::TRUE) {
            parts.push("true");
        }
        if self.has(Self::FALSE) {
            parts.push("false");
        }
        if self.has(Self::UNKNOWN) {
            parts.push("unknown");
        }
        write!(f, "{{{}}}", parts.join(","))
    }
}

/// A value read from the context, borrowed where possible.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Val<'a> {
    Json(&'a Value),
    Str(&'a str),
    Int(i64),
    List(&'a [String]),
}

/// The result of reading an attribute path.
pub(crate) enum Lookup<'a> {
    Found(Val<'a>),
    Missing,
    Unknown(UnknownReason),
    /// Tool arguments at list time: any value is possible.
    Free,
}

/// Reads attribute paths; implemented by the authorizer over principal, request and context.
pub(crate) trait Attributes {
    fn lookup(&self, path: &AttributePath) -> Lookup<'_>;
}

/// Walks `rest` into a JSON value.
pub(crate) fn walk<'a>(mut v: &'a Value, rest: &[Box<str>]) -> Option<&'a Value> {
    for seg in rest {
        v = match v {
            Value::Object(m) => m.get(&**seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

impl Condition {
    fn collect_paths<'a>(&'a self, out: &mut Vec<&'a AttributePath>) {
        match self {
            Condition::Compare { path, .. } => out.push(path),
            Condition::All(items) | Condition::Any(items) => {
                for c in items {
                    c.collect_paths(out);
                }
            }
            Condition::Not(c) => c.collect_paths(out),
        }
    }

    /// Evaluates the condition; unknown leaves are recorded in `unknown` when it is given.
    pub(crate) fn eval(
        &self,
        attrs: &dyn Attributes,
        policy: &str,
        unknown: &mut Option<&mut Vec<UnknownAttribute>>,
    ) -> Outcomes {
        match self {
            Condition::Compare { path, operator } => {
                let (out, why) = compare(attrs.lookup(path), operator);
                if let (Some(why), Some(list)) = (why, unknown.as_deref_mut()) {
                    list.push(UnknownAttribute {
                        path: path.as_str().to_owned(),
                        reason: why,
                        policy: policy.to_owned(),
                    });
                }
                out
            }
            Condition::All(items) => {
                let mut acc = Outcomes::TRUE;
                for c in items {
                    acc = acc.and(c.eval(attrs, policy, unknown));
                    // Definitely false: nothing after this can change the result.
                    if acc == Outcomes::FALSE && unknown.is_none() {
                        break;
                    }
                }
                acc
            }
            Condition::Any(items) => {
                let mut acc = Outcomes::FALSE;
                for c in items {
                    acc = acc.or(c.eval(attrs, policy, unknown));
                    if acc == Outcomes::TRUE && unknown.is_none() {
                        break;
                    }
                }
                acc
            }
            Condition::Not(c) => c.eval(attrs, policy, unknown).not(),
        }
    }
}

fn compare(found: Lookup<'_>, op: &Operator) -> (Outcomes, Option<UnknownReason>) {
    let v = match found {
        Lookup::Free => return (Outcomes::FREE, None),
        Lookup::Unknown(why) => return (Outcomes::UNKNOWN, Some(why)),
        Lookup::Missing => {
            return match op {
                Operator::Exists(want) => (Outcomes::from_bool(!*want), None),
                _ => (Outcomes::UNKNOWN, Some(UnknownReason::Missing)),
            };
        }
        Lookup::Found(v) => v,
    };
    let result = match op {
        Operator::Exists(want) => Some(*want),
        Operator::Equals(e) => equals(v, e),
        Operator::NotEquals(e) => equals(v, e).map(|b| !b),
        Operator::Contains(e) => contains(v, e),
        Operator::Matches(re) => as_str(v).map(|s| re.is_match(s)),
        Operator::GreaterThan(n) => as_f64(v).map(|x| x > *n),
        Operator::LessThan(n) => as_f64(v).map(|x| x < *n),
        Operator::InRange(lo, hi) => as_f64(v).map(|x| x >= *lo && x <= *hi),
        Operator::In(items) => {
            let mut comparable = false;
            let mut hit = false;
            for item in items {
                match equals(v, item) {
                    Some(true) => {
                        hit = true;
                        break;
                    }
                    Some(false) => comparable = true,
                    None => {}
                }
            }
            (hit || comparable).then_some(hit)
        }
    };
    match result {
        Some(b) => (Outcomes::from_bool(b), None),
        None => (Outcomes::UNKNOWN, Some(UnknownReason::WrongType)),
    }
}

fn as_str<'a>(v: Val<'a>) -> Option<&'a str> {
    match v {
        Val::Json(Value::String(s)) => Some(s),
        Val::Str(s) => Some(s),
        _ => None,
    }
}

fn as_f64(v: Val<'_>) -> Option<f64> {
    match v {
        Val::Json(Value::Number(n)) => n.as_f64(),
        Val::Int(i) => Some(i as f64),
        _ => None,
    }
}

/// Equality when both sides have the same JSON type; `None` when the types differ.
fn equals(v: Val<'_>, e: &Value) -> Option<bool> {
    match (v, e) {
        (Val::Json(Value::Number(a)), Value::Number(b)) => Some(a.as_f64() == b.as_f64()),
        (Val::Json(a), b) if same_type(a, b) => Some(a == b),
        (Val::Str(a), Value::String(b)) => Some(a == b),
        (Val::Int(a), Value::Number(b)) => Some(Some(a as f64) == b.as_f64()),
        (Val::List(a), Value::Array(b)) => {
            Some(a.len() == b.len() && a.iter().zip(b).all(|(x, y)| y.as_str() == Some(x.as_str())))
        }
        _ => None,
    }
}

fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn contains(v: Val<'_>, e: &Value) -> Option<bool> {
    match (v, e) {
        (Val::Json(Value::Array(items)), e) => {
            Some(items.iter().any(|i| equals(Val::Json(i), e) == Some(true)))
        }
        (Val::List(items), Value::String(s)) => Some(items.iter().any(|i| i == s)),
        (Val::List(_), _) => None,
        (v, Value::String(needle)) => as_str(v).map(|s| s.contains(needle.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, Lookup2>);
    #[derive(Clone)]
    enum Lookup2 {
        Val(Value),
        Failed,
        Free,
    }

    impl Attributes for Map {
        fn lookup(&self, path: &AttributePath) -> Lookup<'_> {
            match self.0.get(path.as_str()) {
                Some(Lookup2::Val(v)) => Lookup::Found(Val::Json(v)),
                Some(Lookup2::Failed) => {
                    Lookup::Unknown(UnknownReason::ProviderFailed("down".into()))
                }
                Some(Lookup2::Free) => Lookup::Free,
                None => Lookup::Missing,
            }
        }
    }

    fn attrs(pairs: &[(&'static str, Value)]) -> Map {
        Map(pairs
            .iter()
            .map(|(k, v)| (*k, Lookup2::Val(v.clone())))
            .collect())
    }

    fn leaf(path: &str, op: &str, value: Option<Value>) -> Condition {
        Condition::Compare {
            path: AttributePath::parse(path).unwrap(),
            operator: Operator::parse(op, value).unwrap(),
        }
    }

    fn eval(c: &Condition, a: &Map) -> Outcomes {
        c.eval(a, "p", &mut None)
    }

    const T: Outcomes = Outcomes::TRUE;
    const F: Outcomes = Outcomes::FALSE;
    const U: Outcomes = Outcomes::UNKNOWN;

    #[test]
    fn policies_name_the_providers_they_read() {
        let p = Policy::new(
            "p",
            None,
            Effect::Allow,
            &["tools:deploy"],
            &["execute"],
            vec![
                leaf("team.deployer", "equals", Some(json!(true))),
                Condition::Not(Box::new(Condition::Any(vec![
                    leaf("subject.dept", "exists", None),
                    leaf("hr.level", "greater_than", Some(json!(2))),
                ]))),
            ],
        )
        .unwrap();
        let paths: Vec<&str> = p.attribute_paths().iter().map(|a| a.as_str()).collect();
        assert_eq!(paths, ["team.deployer", "subject.dept", "hr.level"]);
        let providers: Vec<&str> = p
            .attribute_paths()
            .into_iter()
            .filter_map(AttributePath::provider)
            .collect();
        assert_eq!(providers, ["team", "hr"]);
    }

    #[test]
    fn every_operator() {
        let a = attrs(&[
            ("subject.dept", json!("eng")),
            ("subject.level", json!(5)),
            ("subject.tags", json!(["a", "b"])),
            ("subject.flag", json!(true)),
        ]);
        let cases: Vec<(&str, &str, Option<Value>, Outcomes)> = vec![
            ("subject.dept", "equals", Some(json!("eng")), T),
            ("subject.dept", "equals", Some(json!("ops")), F),
            ("subject.dept", "equals", Some(json!(1)), U),
            ("subject.level", "equals", Some(json!(5.0)), T),
            ("subject.flag", "equals", Some(json!(true)), T),
            ("subject.dept", "not_equals", Some(json!("ops")), T),
            ("subject.dept", "not_equals", Some(json!("eng")), F),
            ("subject.tags", "contains", Some(json!("a")), T),
            ("subject.tags", "contains", Some(json!("z")), F),
            ("subject.dept", "contains", Some(json!("n")), T),
            ("subject.level", "contains", Some(json!("n")), U),
            ("subject.dept", "matches", Some(json!("^e.g$")), T),
            ("subject.dept", "matches", Some(json!("^x")), F),
            ("subject.level", "matches", Some(json!("5")), U),
            ("subject.level", "greater_than", Some(json!(4)), T),
            ("subject.level", "greater_than", Some(json!(5)), F),
            ("subject.dept", "greater_than", Some(json!(5)), U),
            ("subject.level", "less_than", Some(json!(6)), T),
            ("subject.level", "less_than", Some(json!(5)), F),
            (
                "subject.level",
                "in_range",
                Some(json!({"min": 5, "max": 9})),
                T,
            ),
            (
                "subject.level",
                "in_range",
                Some(json!({"min": 6, "max": 9})),
                F,
            ),
            (
                "subject.dept",
                "in_range",
                Some(json!({"min": 6, "max": 9})),
                U,
            ),
            ("subject.dept", "in", Some(json!(["ops", "eng"])), T),
            ("subject.dept", "in", Some(json!(["ops"])), F),
            ("subject.dept", "in", Some(json!([1, 2])), U),
            ("subject.dept", "exists", None, T),
            ("subject.nope", "exists", None, F),
            ("subject.nope", "exists", Some(json!(false)), T),
            ("subject.dept", "exists", Some(json!(false)), F),
            ("subject.nope", "equals", Some(json!("x")), U),
        ];
        for (path, op, value, want) in cases {
            let c = leaf(path, op, value.clone());
            assert_eq!(eval(&c, &a), want, "{path} {op} {value:?}");
        }
    }

    #[test]
    fn load_errors() {
        let k = |op: &str, v: Option<Value>| Operator::parse(op, v).unwrap_err().kind;
        assert!(matches!(
            k("like", Some(json!(1))),
            ConditionErrorKind::UnknownOperator(_)
        ));
        assert!(matches!(
            k("matches", Some(json!("("))),
            ConditionErrorKind::BadRegex(_)
        ));
        assert!(matches!(
            k("matches", Some(json!(1))),
            ConditionErrorKind::BadValue(_)
        ));
        assert!(matches!(
            k("in_range", Some(json!({"min": 3, "max": 1}))),
            ConditionErrorKind::BadValue(_)
        ));
        assert!(matches!(
            k("in", Some(json!("x"))),
            ConditionErrorKind::BadValue(_)
        ));
        assert!(matches!(
            k("greater_than", Some(json!("x"))),
            ConditionErrorKind::BadValue(_)
        ));
        assert!(matches!(k("equals", None), ConditionErrorKind::BadValue(_)));
        assert!(AttributePath::parse("subject").is_err());
        assert!(AttributePath::parse("subject..x").is_err());
        assert!(AttributePath::parse("environment.moon").is_err());
        assert!(AttributePath::parse("action.x").is_err());
        assert!(AttributePath::parse("hr.level").is_ok());
    }

    #[test]
    fn unknown_propagates_through_not_any_all() {
        let a = Map(HashMap::from([("hr.level", Lookup2::Failed)]));
        let eq = leaf("hr.level", "equals", Some(json!(1)));
        let ne = leaf("hr.level", "not_equals", Some(json!(1)));
        let t = leaf("subject.x", "exists", Some(json!(false)));
        let f = leaf("subject.x", "exists", None);
        assert_eq!(eval(&eq, &a), U);
        assert_eq!(
            eval(&ne, &a),
            U,
            "not_equals of unknown is unknown, never true"
        );
        assert_eq!(eval(&Condition::Not(Box::new(eq.clone())), &a), U);
        assert_eq!(eval(&Condition::Any(vec![eq.clone(), f.clone()]), &a), U);
        assert_eq!(eval(&Condition::Any(vec![eq.clone(), t.clone()]), &a), T);
        assert_eq!(eval(&Condition::All(vec![eq.clone(), t.clone()]), &a), U);
        assert_eq!(eval(&Condition::All(vec![eq.clone(), f.clone()]), &a), F);
        assert_eq!(eval(&Condition::All(vec![]), &a), T);
        assert_eq!(eval(&Condition::Any(vec![]), &a), F);
        // An allow never applies on unknown; a deny does.
        assert!(!U.allow_applies());
        assert!(U.deny_applies());
        assert!(T.allow_applies() && T.deny_applies());
        assert!(!F.allow_applies() && !F.deny_applies());
    }

    #[test]
    fn free_outcomes_at_list_time() {
        let a = Map(HashMap::from([("resource.arguments.env", Lookup2::Free)]));
        let env = leaf("resource.arguments.env", "equals", Some(json!("staging")));
        let free = eval(&env, &a);
        assert!(free.allow_applies(), "some call could be allowed");
        assert!(
            !free.deny_applies(),
            "a deny on arguments does not hide at list time"
        );
        let negated = eval(&Condition::Not(Box::new(env.clone())), &a);
        assert!(negated.allow_applies() && !negated.deny_applies());
        let with_false = eval(
            &Condition::All(vec![env.clone(), leaf("subject.x", "exists", None)]),
            &a,
        );
        assert!(!with_false.allow_applies());
        let with_unknown = eval(
            &Condition::All(vec![env, leaf("subject.x", "equals", Some(json!(1)))]),
            &a,
        );
        assert!(
            !with_unknown.allow_applies(),
            "unknown never grants, even at list time"
        );
        assert!(!with_unknown.deny_applies());
    }

    #[test]
    fn kleene_tables_hold_on_singletons() {
        let all = [T, F, U];
        let tri = |o: Outcomes| {
            if o == T {
                2
            } else if o == U {
                1
            } else {
                0
            }
        };
        for a in all {
            for b in all {
                let and = a.and(b);
                let or = a.or(b);
                assert_eq!(tri(and), tri(a).min(tri(b)), "{a:?} and {b:?}");
                assert_eq!(tri(or), tri(a).max(tri(b)), "{a:?} or {b:?}");
            }
            assert_eq!(tri(a.not()), 2 - tri(a));
        }
    }

    #[test]
    fn policy_targets() {
        assert!(matches!(
            Policy::new("p", None, Effect::Allow, &[], &["execute"], vec![]),
            Err(PolicyTargetError::Empty("resources"))
        ));
        assert!(matches!(
            Policy::new("p", None, Effect::Allow, &["tools"], &["execute"], vec![]),
            Err(PolicyTargetError::ResourceShape(_))
        ));
        assert!(matches!(
            Policy::new("p", None, Effect::Allow, &["tools:x"], &["ex ec"], vec![]),
            Err(PolicyTargetError::Action { .. })
        ));
        let p = Policy::new(
            "p",
            None,
            Effect::Allow,
            &["resources:file:///a:b", "tools:@safe", "*"],
            &["*"],
            vec![],
        )
        .unwrap();
        assert_eq!(p.group_refs().collect::<Vec<_>>(), vec![("tools", "safe")]);
    }
}
