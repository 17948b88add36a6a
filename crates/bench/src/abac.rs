//! The ABAC workload: 100 policies (about 4 in 5 allow, the rest deny) over tool names, each with
//! conditions on subject attributes and on tool arguments; 8 principals; 64 `tools/call` requests
//! of which half are allowed.
//!
//! In mcp-guard a policy is `resources = ["tools:<target>"]`, `actions = ["execute"]` and its
//! conditions; in Cedar it is `permit` or `forbid (principal, action == Action::"execute",
//! resource) when { resource.name like "<target>" && <conditions> }`. Subject attributes are
//! attributes of the `User` entity, tool arguments are `context.arguments`. Every attribute a
//! comparison reads is present with the expected type, so neither engine meets an unknown value
//! or an evaluation error; optional attributes are only tested for presence (`exists` / `has`).
//! Both engines then mean the same thing: deny overrides allow, and nothing applicable means deny.

use std::fmt::Write as _;

use mcp_guard_core::abac::{AttributePath, Condition, Effect, Operator, Policy};
use mcp_guard_core::{AuthMethod, AuthorizerBuilder, Mode, Operation, Principal};
use serde_json::{Map, Value, json};

use crate::{BoxError, CedarSetup, GuardSetup, REQUESTS, Rng, cedar_str, cedar_target};

const SERVICES: [&str; 10] = [
    "deploy", "db", "files", "billing", "github", "k8s", "mail", "search", "vault", "ci",
];
const VERBS: [&str; 6] = ["read", "run", "create", "delete", "export", "sync"];
const OBJECTS: [&str; 6] = ["config", "table", "report", "secret", "build", "job"];
const DEPARTMENTS: [&str; 5] = ["eng", "ops", "sales", "finance", "support"];
const GROUPS: [&str; 5] = ["oncall", "admins", "auditors", "releasers", "dba"];
const REGIONS: [&str; 3] = ["eu", "us", "apac"];
const ENVS: [&str; 3] = ["dev", "staging", "prod"];
const PATHS: [&str; 5] = [
    "/tmp/scratch/a.txt",
    "/tmp/cache/b.bin",
    "/srv/data/c.csv",
    "/home/u/notes.md",
    "/srv/backup/d.tar",
];

/// How many policies.
pub const POLICIES: usize = 100;
/// How many principals the requests come from.
pub const PRINCIPALS: usize = 8;

/// What a condition reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    /// `subject.<key>` / `principal.<key>`.
    Subject(&'static str),
    /// `resource.arguments.<key>` / `context.arguments.<key>`.
    Argument(&'static str),
}

/// A comparison, with the same meaning in both engines on values of the expected type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// String equality.
    Equals(&'static str),
    /// String inequality.
    NotEquals(&'static str),
    /// Integer `>`.
    GreaterThan(i64),
    /// Integer `<`.
    LessThan(i64),
    /// Integer in `[min, max]`.
    InRange(i64, i64),
    /// The string is one of these.
    In(Vec<&'static str>),
    /// The array (a Cedar set) holds this string.
    Has(&'static str),
    /// The string contains this substring.
    Substring(&'static str),
    /// The attribute is present.
    Exists,
}

/// A condition tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    /// One comparison.
    Leaf(Attr, Op),
    /// Some item holds.
    Any(Vec<Cond>),
    /// The item does not hold.
    Not(Box<Cond>),
}

/// One policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbacPolicy {
    /// Its id.
    pub id: String,
    /// Allow (`permit`) or deny (`forbid`).
    pub allow: bool,
    /// The tool-name target: literal, `prefix*` or `prefix*suffix`.
    pub target: String,
    /// All of these must hold.
    pub conditions: Vec<Cond>,
}

/// One request.
#[derive(Clone, Debug, PartialEq)]
pub struct AbacRequest {
    /// Index into the principals.
    pub subject: usize,
    /// The tool called.
    pub tool: String,
    /// Its arguments (an object).
    pub arguments: Value,
}

/// Policies, principals and requests.
#[derive(Clone, Debug)]
pub struct AbacWorkload {
    /// The policies.
    pub policies: Vec<AbacPolicy>,
    /// Principal names and attributes.
    pub subjects: Vec<(String, Map<String, Value>)>,
    /// The requests.
    pub requests: Vec<AbacRequest>,
    /// The reference decision for each request.
    pub expected: Vec<bool>,
}

fn tool(rng: &mut Rng) -> String {
    format!(
        "{}_{}_{}",
        rng.pick(&SERVICES),
        rng.pick(&VERBS),
        rng.pick(&OBJECTS)
    )
}

fn two<T: Copy>(rng: &mut Rng, items: &[T]) -> Vec<T> {
    rng.distinct(2, items.len())
        .into_iter()
        .map(|i| items[i])
        .collect()
}

fn subject_leaf(rng: &mut Rng) -> Cond {
    let (attr, op) = match rng.below(8) {
        0 => ("department", Op::Equals(rng.choose(&DEPARTMENTS))),
        1 => ("department", Op::NotEquals(rng.choose(&DEPARTMENTS))),
        2 => ("level", Op::GreaterThan(1 + rng.below(7) as i64)),
        3 => ("level", Op::LessThan(3 + rng.below(7) as i64)),
        4 => {
            let lo = 1 + rng.below(6) as i64;
            ("level", Op::InRange(lo, lo + 3))
        }
        5 => ("groups", Op::Has(rng.choose(&GROUPS))),
        6 => ("region", Op::In(two(rng, &REGIONS))),
        _ => ("clearance", Op::Exists),
    };
    Cond::Leaf(Attr::Subject(attr), op)
}

fn argument_leaf(rng: &mut Rng) -> Cond {
    let (attr, op) = match rng.below(8) {
        0 => ("env", Op::Equals(rng.choose(&ENVS))),
        1 => ("env", Op::In(two(rng, &ENVS))),
        2 => ("count", Op::LessThan(rng.choose(&[50, 100, 200, 400]))),
        3 => ("count", Op::GreaterThan(rng.choose(&[10, 50, 100, 250]))),
        4 => {
            let lo = rng.choose(&[0, 50, 100, 200]);
            ("count", Op::InRange(lo, lo + 150))
        }
        5 => (
            "path",
            Op::Substring(rng.choose(&["/tmp/", "/srv/", "/home/"])),
        ),
        6 => ("region", Op::Equals(rng.choose(&REGIONS))),
        _ => ("dry_run", Op::Exists),
    };
    Cond::Leaf(Attr::Argument(attr), op)
}

fn any_leaf(rng: &mut Rng) -> Cond {
    if rng.chance(1, 2) {
        subject_leaf(rng)
    } else {
        argument_leaf(rng)
    }
}

impl AbacWorkload {
    /// The benchmark workload.
    pub fn standard() -> Self {
        Self::generate(0x5eed_abac)
    }

    /// Generates the workload deterministically from `seed`.
    pub fn generate(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let policies = (0..POLICIES)
            .map(|i| {
                let allow = !rng.chance(1, 5);
                let svc = rng.pick(&SERVICES);
                let target = match rng.below(10) {
                    0..3 => format!("{svc}_{}_{}", rng.pick(&VERBS), rng.pick(&OBJECTS)),
                    3..5 => format!("{svc}_{}_*", rng.pick(&VERBS)),
                    5..7 => format!("{svc}_*"),
                    _ => format!("{svc}_*_{}", rng.pick(&OBJECTS)),
                };
                let mut conditions = vec![subject_leaf(&mut rng), argument_leaf(&mut rng)];
                if allow && rng.chance(1, 2) {
                    conditions.push(match rng.below(3) {
                        0 => Cond::Any(vec![subject_leaf(&mut rng), argument_leaf(&mut rng)]),
                        1 => Cond::Not(Box::new(any_leaf(&mut rng))),
                        _ => any_leaf(&mut rng),
                    });
                }
                AbacPolicy {
                    id: format!("p{i:03}"),
                    allow,
                    target,
                    conditions,
                }
            })
            .collect();
        let names = [
            "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
        ];
        let subjects = names
            .iter()
            .take(PRINCIPALS)
            .map(|name| {
                let mut attrs = Map::new();
                attrs.insert("department".into(), json!(rng.pick(&DEPARTMENTS)));
                attrs.insert("level".into(), json!(1 + rng.below(10)));
                let how_many = 1 + rng.below(3);
                let groups: Vec<&str> = rng
                    .distinct(how_many, GROUPS.len())
                    .into_iter()
                    .map(|g| GROUPS[g])
                    .collect();
                attrs.insert("groups".into(), json!(groups));
                attrs.insert("region".into(), json!(rng.pick(&REGIONS)));
                if rng.chance(1, 2) {
                    attrs.insert("clearance".into(), json!("secret"));
                }
                ((*name).to_owned(), attrs)
            })
            .collect();
        let mut w = AbacWorkload {
            policies,
            subjects,
            requests: Vec::new(),
            expected: Vec::new(),
        };
        // Quotas: allowed; denied although a permit applies (a forbid overrides it); denied
        // because no permit applies.
        let quota = [REQUESTS / 2, REQUESTS / 8, REQUESTS / 2 - REQUESTS / 8];
        let mut filled = [0; 3];
        let forbids: Vec<usize> = (0..w.policies.len())
            .filter(|&i| !w.policies[i].allow)
            .collect();
        while w.requests.len() < REQUESTS {
            let tool = if rng.chance(4, 5) {
                let policy = if filled[1] < quota[1] && rng.chance(1, 2) {
                    rng.choose(&forbids)
                } else {
                    rng.below(w.policies.len())
                };
                let target = &w.policies[policy].target;
                let parts: Vec<&str> = target.split('_').collect();
                let fill = match parts.as_slice() {
                    [_, "*"] => format!("{}_{}", rng.pick(&VERBS), rng.pick(&OBJECTS)),
                    [_, "*", _] => rng.choose(&VERBS).to_owned(),
                    _ => rng.choose(&OBJECTS).to_owned(),
                };
                target.replacen('*', &fill, 1)
            } else {
                tool(&mut rng)
            };
            let mut arguments = json!({
                "env": rng.pick(&ENVS),
                "count": 1 + rng.below(500),
                "region": rng.pick(&REGIONS),
                "path": rng.pick(&PATHS),
            });
            if rng.chance(1, 3)
                && let Some(obj) = arguments.as_object_mut()
            {
                obj.insert("dry_run".into(), json!(rng.chance(1, 2)));
            }
            let request = AbacRequest {
                subject: rng.below(PRINCIPALS),
                tool,
                arguments,
            };
            let kind = match w.applicable(&request) {
                (0, _) => 2,
                (_, 0) => 0,
                _ => 1,
            };
            if filled[kind] == quota[kind] {
                continue;
            }
            filled[kind] += 1;
            w.expected.push(kind == 0);
            w.requests.push(request);
        }
        w
    }

    /// The reference decision: deny overrides allow, default deny.
    pub fn reference(&self, r: &AbacRequest) -> bool {
        let (permits, forbids) = self.applicable(r);
        permits > 0 && forbids == 0
    }

    /// How many allow and deny policies apply to a request, by the reference evaluator.
    pub fn applicable(&self, r: &AbacRequest) -> (usize, usize) {
        let attrs = &self.subjects[r.subject].1;
        let applies = |p: &&AbacPolicy| {
            crate::glob_matches(&p.target, &r.tool)
                && p.conditions
                    .iter()
                    .all(|c| reference_eval(c, attrs, &r.arguments))
        };
        let permits = self.policies.iter().filter(applies).filter(|p| p.allow);
        let forbids = self.policies.iter().filter(applies).filter(|p| !p.allow);
        (permits.count(), forbids.count())
    }

    /// How many policies of each effect: `(allow, deny)`.
    pub fn effects(&self) -> (usize, usize) {
        let allow = self.policies.iter().filter(|p| p.allow).count();
        (allow, self.policies.len() - allow)
    }

    /// The Cedar policy text: one `permit` or `forbid` per policy.
    pub fn cedar_policies(&self) -> String {
        let (allow, deny) = self.effects();
        let mut out = format!(
            "// Generated by `cargo run -p mcp-guard-bench --bin gen_cedar`: do not edit.\n\
             // ABAC, {} policies ({allow} permit, {deny} forbid) on subject attributes and tool \
             arguments.\n",
            self.policies.len(),
        );
        for p in &self.policies {
            let mut conds = vec![cedar_target(&p.target)];
            conds.extend(p.conditions.iter().map(cedar_cond));
            let _ = write!(
                out,
                "\n@id({})\n{} (\n    principal,\n    action == Action::\"execute\",\n    \
                 resource\n)\nwhen {{\n    {}\n}};\n",
                cedar_str(&p.id),
                if p.allow { "permit" } else { "forbid" },
                conds.join(" &&\n    ")
            );
        }
        out
    }

    /// The mcp-guard side: ABAC mode, the principals resolved once.
    pub fn guard(&self) -> Result<GuardSetup, BoxError> {
        let mut builder = AuthorizerBuilder::new().mode(Mode::Abac).default_role(None);
        for p in &self.policies {
            let conditions = p
                .conditions
                .iter()
                .map(guard_cond)
                .collect::<Result<Vec<_>, _>>()?;
            let effect = if p.allow { Effect::Allow } else { Effect::Deny };
            let resource = format!("tools:{}", p.target);
            builder = builder.policy(Policy::new(
                p.id.clone(),
                None,
                effect,
                &[&resource],
                &["execute"],
                conditions,
            )?);
        }
        let authorizer = builder.build()?;
        let subjects = self
            .subjects
            .iter()
            .map(|(name, attrs)| {
                let mut principal = Principal::new(None, name.clone(), AuthMethod::Cli);
                principal.attributes = attrs.clone().into();
                authorizer.resolve(principal)
            })
            .collect();
        let requests = self
            .requests
            .iter()
            .map(|r| {
                (
                    r.subject,
                    Operation::CallTool {
                        name: r.tool.as_str().into(),
                        arguments: Some(r.arguments.clone()),
                    },
                )
            })
            .collect();
        Ok(GuardSetup::new(authorizer, subjects, requests))
    }

    /// The Cedar side, from the given policy text (the committed file).
    pub fn cedar(&self, policy_text: &str) -> Result<CedarSetup, BoxError> {
        let mut entities: Vec<Value> = self
            .subjects
            .iter()
            .map(|(name, attrs)| {
                json!({"uid": {"type": "User", "id": name}, "attrs": attrs, "parents": []})
            })
            .collect();
        entities.extend(crate::cedar_tools(self.requests.iter().map(|r| &*r.tool)));
        let requests = self
            .requests
            .iter()
            .map(|r| {
                crate::cedar_request(
                    &self.subjects[r.subject].0,
                    &r.tool,
                    json!({"arguments": r.arguments}),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        CedarSetup::new(policy_text, Value::Array(entities), requests)
    }
}

fn lookup<'a>(attr: Attr, subject: &'a Map<String, Value>, args: &'a Value) -> Option<&'a Value> {
    match attr {
        Attr::Subject(k) => subject.get(k),
        Attr::Argument(k) => args.get(k),
    }
}

/// The reference meaning of a condition (two-valued: the workload never reads a missing value).
fn reference_eval(c: &Cond, subject: &Map<String, Value>, args: &Value) -> bool {
    match c {
        Cond::Leaf(attr, op) => {
            let v = lookup(*attr, subject, args);
            let s = v.and_then(Value::as_str);
            let n = v.and_then(Value::as_i64);
            match op {
                Op::Exists => v.is_some(),
                Op::Equals(x) => s == Some(*x),
                Op::NotEquals(x) => s.is_some_and(|s| s != *x),
                Op::GreaterThan(k) => n.is_some_and(|n| n > *k),
                Op::LessThan(k) => n.is_some_and(|n| n < *k),
                Op::InRange(lo, hi) => n.is_some_and(|n| n >= *lo && n <= *hi),
                Op::In(list) => s.is_some_and(|s| list.contains(&s)),
                Op::Has(x) => v
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|e| e.as_str() == Some(*x))),
                Op::Substring(x) => s.is_some_and(|s| s.contains(x)),
            }
        }
        Cond::Any(items) => items.iter().any(|c| reference_eval(c, subject, args)),
        Cond::Not(c) => !reference_eval(c, subject, args),
    }
}

fn guard_cond(c: &Cond) -> Result<Condition, BoxError> {
    Ok(match c {
        Cond::Leaf(attr, op) => {
            let path = match attr {
                Attr::Subject(k) => format!("subject.{k}"),
                Attr::Argument(k) => format!("resource.arguments.{k}"),
            };
            let (name, value) = match op {
                Op::Equals(x) => ("equals", Some(json!(x))),
                Op::NotEquals(x) => ("not_equals", Some(json!(x))),
                Op::GreaterThan(k) => ("greater_than", Some(json!(k))),
                Op::LessThan(k) => ("less_than", Some(json!(k))),
                Op::InRange(lo, hi) => ("in_range", Some(json!({"min": lo, "max": hi}))),
                Op::In(list) => ("in", Some(json!(list))),
                Op::Has(x) | Op::Substring(x) => ("contains", Some(json!(x))),
                Op::Exists => ("exists", None),
            };
            Condition::Compare {
                path: AttributePath::parse(&path)?,
                operator: Operator::parse(name, value)?,
            }
        }
        Cond::Any(items) => Condition::Any(items.iter().map(guard_cond).collect::<Result<_, _>>()?),
        Cond::Not(c) => Condition::Not(Box::new(guard_cond(c)?)),
    })
}

fn cedar_cond(c: &Cond) -> String {
    match c {
        Cond::Leaf(attr, op) => {
            let (root, key) = match attr {
                Attr::Subject(k) => ("principal", *k),
                Attr::Argument(k) => ("context.arguments", *k),
            };
            let p = format!("{root}.{key}");
            match op {
                Op::Equals(x) => format!("{p} == {}", cedar_str(x)),
                Op::NotEquals(x) => format!("{p} != {}", cedar_str(x)),
                Op::GreaterThan(k) => format!("{p} > {k}"),
                Op::LessThan(k) => format!("{p} < {k}"),
                Op::InRange(lo, hi) => format!("({p} >= {lo} && {p} <= {hi})"),
                Op::In(list) => {
                    let items: Vec<String> = list.iter().map(|s| cedar_str(s)).collect();
                    format!("[{}].contains({p})", items.join(", "))
                }
                Op::Has(x) => format!("{p}.contains({})", cedar_str(x)),
                // The substrings hold no `*`, so this `like` is a plain substring test.
                Op::Substring(x) => format!("{p} like {}", cedar_str(&format!("*{x}*"))),
                Op::Exists => format!("{root} has {key}"),
            }
        }
        Cond::Any(items) => {
            let items: Vec<String> = items.iter().map(cedar_cond).collect();
            format!("({})", items.join(" || "))
        }
        Cond::Not(c) => format!("!({})", cedar_cond(c)),
    }
}
