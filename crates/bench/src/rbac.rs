//! RBAC workloads: roles holding `tools:execute:<target>` patterns, one principal holding 10 roles,
//! 64 `tools/call` requests of which half are allowed.
//!
//! Tool names look like `billing3_export_invoice` (service, verb, object). Each role works on two
//! services and gets a mix of targets: literal (`billing3_export_invoice`, 40%), prefix-glob
//! (`billing3_export_*` or `billing3_*`, 30%) and infix-glob (`billing3_*_invoice`, 30%).
//!
//! In Cedar each role is one policy, `permit (principal in Role::"…", action ==
//! Action::"execute", resource) when { resource.name == "…" || resource.name like "…" || … }`,
//! with one disjunct per pattern; the principal is a `User` whose parents are the roles it holds.

use std::fmt::Write as _;

use mcp_guard_core::{AuthMethod, AuthorizerBuilder, Mode, Operation, Pattern, Principal};
use serde_json::json;

use crate::{BoxError, CedarSetup, GuardSetup, REQUESTS, Rng, cedar_str, cedar_target};

const SERVICE_WORDS: [&str; 20] = [
    "billing", "github", "jira", "slack", "deploy", "db", "files", "search", "mail", "calendar",
    "crm", "metrics", "logs", "k8s", "storage", "vault", "wiki", "ci", "tickets", "payments",
];
const VERBS: [&str; 12] = [
    "read", "list", "create", "update", "delete", "get", "search", "export", "run", "sync",
    "approve", "send",
];
const OBJECTS: [&str; 16] = [
    "invoice", "issue", "report", "user", "page", "record", "job", "file", "channel", "event",
    "ticket", "secret", "build", "table", "pod", "order",
];

/// How many roles the principal holds.
pub const HELD_ROLES: usize = 10;

/// The principal's name in both engines.
pub const PRINCIPAL: &str = "alice";

/// One role and its target patterns (all under `tools:execute`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// The role name.
    pub name: String,
    /// Targets: literal, `prefix*` or `prefix*suffix`.
    pub targets: Vec<String>,
}

/// Roles, the roles the principal holds, and the requests.
#[derive(Clone, Debug)]
pub struct RbacWorkload {
    /// All roles.
    pub roles: Vec<Role>,
    /// Indices into `roles` of the roles the principal holds.
    pub held: Vec<usize>,
    /// Requested tool names.
    pub requests: Vec<String>,
    /// The reference decision for each request.
    pub expected: Vec<bool>,
}

/// A service: a word and a digit (200 of them).
fn service(rng: &mut Rng) -> String {
    format!("{}{}", rng.pick(&SERVICE_WORDS), rng.below(10))
}

fn tool(svc: &str, rng: &mut Rng) -> String {
    format!("{svc}_{}_{}", rng.pick(&VERBS), rng.pick(&OBJECTS))
}

/// A tool name that `target` matches, filling the `*` with plausible words.
fn instantiate(target: &str, rng: &mut Rng) -> String {
    let fill = match target.split('_').collect::<Vec<_>>().as_slice() {
        [_, "*"] => format!("{}_{}", rng.pick(&VERBS), rng.pick(&OBJECTS)),
        [_, "*", _] => (*rng.pick(&VERBS)).to_owned(),
        _ => (*rng.pick(&OBJECTS)).to_owned(),
    };
    target.replacen('*', &fill, 1)
}

impl RbacWorkload {
    /// 10 roles of 5 patterns; the principal holds all 10.
    pub fn small() -> Self {
        Self::generate(10, 5, 0x5eed_0010)
    }

    /// 1,000 roles of 10 patterns; the principal holds 10 of them.
    pub fn large() -> Self {
        Self::generate(1000, 10, 0x5eed_1000)
    }

    /// Generates `roles` roles of `patterns` patterns each, deterministically from `seed`.
    pub fn generate(roles: usize, patterns: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let width = roles.to_string().len().max(2);
        let roles: Vec<Role> = (0..roles)
            .map(|r| {
                let services = [service(&mut rng), service(&mut rng)];
                let mut targets = Vec::with_capacity(patterns);
                while targets.len() < patterns {
                    let svc = rng.pick(&services).clone();
                    let target = match rng.below(10) {
                        0..4 => tool(&svc, &mut rng),
                        4..6 => format!("{svc}_{}_*", rng.pick(&VERBS)),
                        6 => format!("{svc}_*"),
                        _ => format!("{svc}_*_{}", rng.pick(&OBJECTS)),
                    };
                    if !targets.contains(&target) {
                        targets.push(target);
                    }
                }
                Role {
                    name: format!("role{r:0width$}"),
                    targets,
                }
            })
            .collect();
        let held = rng.distinct(HELD_ROLES, roles.len());
        let mut w = RbacWorkload {
            roles,
            held,
            requests: Vec::new(),
            expected: Vec::new(),
        };
        let (mut allowed, mut denied) = (0, 0);
        while allowed + denied < REQUESTS {
            let want_allow = denied >= REQUESTS / 2 || (allowed < REQUESTS / 2 && rng.chance(1, 2));
            let name = if want_allow {
                let role = &w.roles[*rng.pick(&w.held)];
                instantiate(rng.pick::<String>(&role.targets), &mut rng)
            } else if rng.chance(3, 4) {
                // A tool some role grants, most likely one the principal does not hold.
                let role = rng.pick(&w.roles);
                instantiate(rng.pick::<String>(&role.targets), &mut rng)
            } else {
                let svc = service(&mut rng);
                tool(&svc, &mut rng)
            };
            let verdict = w.reference(&name);
            if verdict != want_allow || w.requests.contains(&name) {
                continue;
            }
            if verdict {
                allowed += 1;
            } else {
                denied += 1;
            }
            w.requests.push(name);
            w.expected.push(verdict);
        }
        w
    }

    /// Total patterns over all roles.
    pub fn pattern_count(&self) -> usize {
        self.roles.iter().map(|r| r.targets.len()).sum()
    }

    /// The reference decision: some held role has a target matching `tool`.
    pub fn reference(&self, tool: &str) -> bool {
        self.held.iter().any(|&r| {
            self.roles[r]
                .targets
                .iter()
                .any(|t| crate::glob_matches(t, tool))
        })
    }

    /// The Cedar policy text: one `permit` per role.
    pub fn cedar_policies(&self) -> String {
        let mut out = format!(
            "// Generated by `cargo run -p mcp-guard-bench --bin gen_cedar`: do not edit.\n\
             // RBAC, {} roles x {} patterns: one policy per role, one disjunct per pattern.\n",
            self.roles.len(),
            self.roles.first().map_or(0, |r| r.targets.len()),
        );
        for role in &self.roles {
            let name = cedar_str(&role.name);
            let conds: Vec<String> = role.targets.iter().map(|t| cedar_target(t)).collect();
            let _ = write!(
                out,
                "\n@id({name})\npermit (\n    principal in Role::{name},\n    \
                 action == Action::\"execute\",\n    resource\n)\nwhen {{\n    {}\n}};\n",
                conds.join(" ||\n    ")
            );
        }
        out
    }

    /// The mcp-guard side: one role per role, the principal resolved once.
    pub fn guard(&self) -> Result<GuardSetup, BoxError> {
        let mut builder = AuthorizerBuilder::new().mode(Mode::Rbac).default_role(None);
        for role in &self.roles {
            let patterns = role
                .targets
                .iter()
                .map(|t| Pattern::parse(&format!("tools:execute:{t}")))
                .collect::<Result<Vec<_>, _>>()?;
            builder = builder.role(role.name.clone(), patterns);
        }
        let authorizer = builder.build()?;
        let mut principal = Principal::new(None, PRINCIPAL, AuthMethod::Cli);
        principal.roles = self
            .held
            .iter()
            .map(|&r| self.roles[r].name.clone())
            .collect();
        let subject = authorizer.resolve(principal);
        if !subject.notes().is_empty() {
            return Err(format!("unexpected notes: {:?}", subject.notes()).into());
        }
        let requests = self
            .requests
            .iter()
            .map(|name| {
                (
                    0,
                    Operation::CallTool {
                        name: name.as_str().into(),
                        arguments: None,
                    },
                )
            })
            .collect();
        Ok(GuardSetup::new(authorizer, vec![subject], requests))
    }

    /// The Cedar side, from the given policy text (the committed file).
    pub fn cedar(&self, policy_text: &str) -> Result<CedarSetup, BoxError> {
        let role_uid = |r: usize| json!({"type": "Role", "id": self.roles[r].name});
        let mut entities = vec![json!({
            "uid": {"type": "User", "id": PRINCIPAL},
            "attrs": {},
            "parents": self.held.iter().map(|&r| role_uid(r)).collect::<Vec<_>>(),
        })];
        entities.extend(
            (0..self.roles.len()).map(|r| json!({"uid": role_uid(r), "attrs": {}, "parents": []})),
        );
        entities.extend(crate::cedar_tools(self.requests.iter().map(String::as_str)));
        let requests = self
            .requests
            .iter()
            .map(|name| crate::cedar_request(PRINCIPAL, name, json!({})))
            .collect::<Result<Vec<_>, _>>()?;
        CedarSetup::new(policy_text, serde_json::Value::Array(entities), requests)
    }
}
