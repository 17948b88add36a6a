//! The authorizer: RBAC (DESIGN.md section 5), ABAC (section 6) and their modes, over classified
//! operations, with explanations.
//!
//! Role and scope patterns from every role live in one [`PatternIndex`]; a lookup finds the
//! patterns that match the permission and keeps those whose source the principal holds (a bitset
//! built once per principal). The cost does not grow with the number of roles or patterns.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use serde_json::Value;

use crate::abac::{AttributePath, Attributes, Effect, Lookup, Policy, Root, Val, walk};
use crate::context::{Context, ProviderResult, ToolCatalog};
use crate::decision::{
    Decision, Matched, Nearest, Reason, RoleOrigin, UnknownAttribute, UnknownReason, Verdict,
};
use crate::group::{GroupNote, Groups};
use crate::index::PatternIndex;
use crate::message::Message;
use crate::operation::{ListKind, Operation, Permission};
use crate::pattern::{Pattern, TargetPattern};
use crate::principal::Principal;

/// Which engines decide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Roles, permission claims and mapped scopes (the seed's default).
    #[default]
    Rbac,
    /// ABAC policies only: deny overrides, default deny.
    Abac,
    /// RBAC must allow and no ABAC deny may apply.
    RbacAbac,
}

impl Mode {
    /// Parses `rbac`, `abac` or `rbac+abac`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rbac" => Some(Mode::Rbac),
            "abac" => Some(Mode::Abac),
            "rbac+abac" => Some(Mode::RbacAbac),
            _ => None,
        }
    }
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rbac => "rbac",
            Mode::Abac => "abac",
            Mode::RbacAbac => "rbac+abac",
        }
    }
}

/// The seed's default roles, as DESIGN.md section 4 maps them.
pub const DEFAULT_ROLES: [(&str, &[&str]); 3] = [
    (
        "admin",
        &["resources:*:*", "tools:*:*", "prompts:*:*", "system:*:*"],
    ),
    (
        "user",
        &["resources:read:*", "tools:execute:@safe", "prompts:read:*"],
    ),
    (
        "readonly",
        &["resources:read:@public", "prompts:read:@public"],
    ),
];

/// Why an authorizer could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A role name that is not defined.
    #[error("unknown role `{role}` in {place}")]
    UnknownRole {
        /// The role.
        role: String,
        /// Where it was named.
        place: String,
    },
    /// A pattern naming a group that no domain it applies to defines.
    #[error("unknown group `@{group}` in `{pattern}`")]
    UnknownGroup {
        /// The group.
        group: String,
        /// The pattern naming it.
        pattern: String,
    },
    /// Two policies with one id.
    #[error("duplicate policy id `{0}`")]
    DuplicatePolicy(String),
}

/// Roles by canonical identity `(issuer, subject)`.
type Assignments = HashMap<(Option<String>, String), Vec<(u32, RoleOrigin)>>;

/// A configured assignment of roles to an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The issuer; `None` means this gateway's own tokens.
    pub issuer: Option<String>,
    /// The subject.
    pub subject: String,
    /// Role names.
    pub roles: Vec<String>,
}

/// Collects roles, groups, scopes, assignments and policies, then checks and indexes them.
#[derive(Clone, Debug)]
pub struct AuthorizerBuilder {
    mode: Mode,
    roles: Vec<(String, Vec<Pattern>)>,
    groups: Groups,
    scope_map: Vec<(String, Vec<Pattern>)>,
    users: Vec<Assignment>,
    admin_users: Vec<(Option<String>, String)>,
    default_role: Option<String>,
    policies: Vec<Policy>,
}

impl Default for AuthorizerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthorizerBuilder {
    /// Starts with the seed's default roles and groups, RBAC mode, and nothing assigned.
    pub fn new() -> Self {
        let roles = DEFAULT_ROLES
            .iter()
            .map(|(name, pats)| {
                let compiled = pats.iter().filter_map(|p| Pattern::parse(p).ok()).collect();
                ((*name).to_owned(), compiled)
            })
            .collect();
        AuthorizerBuilder {
            mode: Mode::Rbac,
            roles,
            groups: Groups::default(),
            scope_map: Vec::new(),
            users: Vec::new(),
            admin_users: Vec::new(),
            default_role: None,
            policies: Vec::new(),
        }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Defines a role, replacing a default or earlier one of the same name.
    pub fn role(mut self, name: impl Into<String>, patterns: Vec<Pattern>) -> Self {
        let name = name.into();
        match self.roles.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = patterns,
            None => self.roles.push((name, patterns)),
        }
        self
    }

    /// Replaces all groups.
    pub fn groups(mut self, groups: Groups) -> Self {
        self.groups = groups;
        self
    }

    /// Maps an OAuth scope to permission patterns (in config order: ties in challenges go first).
    pub fn scope(mut self, scope: impl Into<String>, patterns: Vec<Pattern>) -> Self {
        self.scope_map.push((scope.into(), patterns));
        self
    }

    /// Assigns roles to an identity.
    pub fn assign(mut self, assignment: Assignment) -> Self {
        self.users.push(assignment);
        self
    }

    /// Gives the `admin` role to an identity (the seed's `adminUsers`).
    pub fn admin_user(mut self, issuer: Option<String>, subject: impl Into<String>) -> Self {
        self.admin_users.push((issuer, subject.into()));
        self
    }

    /// The role every authenticated principal gets (the seed's `defaultRole`).
    pub fn default_role(mut self, role: Option<String>) -> Self {
        self.default_role = role;
        self
    }

    /// Adds an ABAC policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policies.push(policy);
        self
    }

    /// Checks every reference and builds the indexes.
    pub fn build(self) -> Result<Authorizer, BuildError> {
        let role_ids: HashMap<String, u32> = self
            .roles
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i as u32))
            .collect();
        let role_id = |role: &str, place: &str| {
            role_ids
                .get(role)
                .copied()
                .ok_or_else(|| BuildError::UnknownRole {
                    role: role.to_owned(),
                    place: place.to_owned(),
                })
        };
        let check_group = |p: &Pattern| match p.target() {
            TargetPattern::Group(g) if !self.groups.defines(p.domain().key(), g) => {
                Err(BuildError::UnknownGroup {
                    group: g.to_string(),
                    pattern: p.as_str().to_owned(),
                })
            }
            _ => Ok(()),
        };

        let mut grants = Vec::new();
        let mut index = PatternIndex::new();
        let nroles = self.roles.len() as u32;
        let sources = self
            .roles
            .iter()
            .map(|(_, p)| p)
            .chain(self.scope_map.iter().map(|(_, p)| p));
        for (source, patterns) in sources.enumerate() {
            for p in patterns {
                check_group(p)?;
                index.insert_tagged(p, grants.len() as u32, source as u32);
                grants.push(Grant {
                    source: source as u32,
                    pattern: p.clone(),
                });
            }
        }

        let mut assignments: Assignments = HashMap::new();
        for a in &self.users {
            let place = format!("the assignment of `{}`", a.subject);
            for r in &a.roles {
                let id = role_id(r, &place)?;
                assignments
                    .entry((a.issuer.clone(), a.subject.clone()))
                    .or_default()
                    .push((id, RoleOrigin::Assigned));
            }
        }
        if !self.admin_users.is_empty() {
            let admin = role_id("admin", "admin_users")?;
            for (iss, sub) in &self.admin_users {
                assignments
                    .entry((iss.clone(), sub.clone()))
                    .or_default()
                    .push((admin, RoleOrigin::AdminUsers));
            }
        }
        let default_role = match &self.default_role {
            Some(r) => Some(role_id(r, "default_role")?),
            None => None,
        };

        let mut policy_index = PatternIndex::new();
        let mut seen = HashSet::new();
        for (i, policy) in self.policies.iter().enumerate() {
            if !seen.insert(policy.id.clone()) {
                return Err(BuildError::DuplicatePolicy(policy.id.clone()));
            }
            for (domain, target) in &policy.resources {
                for action in &policy.actions {
                    let p = Pattern::from_parts(domain.clone(), action.clone(), target.clone());
                    check_group(&p)?;
                    policy_index.insert(&p, i as u32);
                }
            }
        }

        Ok(Authorizer {
            mode: self.mode,
            role_names: self.roles.iter().map(|(n, _)| n.clone()).collect(),
            role_ids,
            scope_names: self.scope_map.iter().map(|(n, _)| n.clone()).collect(),
            scope_ids: self
                .scope_map
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.clone(), nroles + i as u32))
                .collect(),
            nroles,
            source_names: self
                .roles
                .iter()
                .map(|(n, _)| Arc::from(n.as_str()))
                .chain(self.scope_map.iter().map(|(n, _)| Arc::from(n.as_str())))
                .collect(),
            grants,
            index,
            groups: self.groups,
            assignments,
            default_role,
            policies: self.policies,
            policy_index,
        })
    }
}

#[derive(Clone, Debug)]
struct Grant {
    /// A role id (< nroles) or nroles + scope index.
    source: u32,
    pattern: Pattern,
}

/// Compiled roles, scopes, groups, assignments and policies. Immutable; share it behind an `Arc`.
#[derive(Clone, Debug)]
pub struct Authorizer {
    mode: Mode,
    role_names: Vec<String>,
    role_ids: HashMap<String, u32>,
    scope_names: Vec<String>,
    scope_ids: HashMap<String, u32>,
    nroles: u32,
    /// Role names, then scope names, by source id.
    source_names: Vec<Arc<str>>,
    grants: Vec<Grant>,
    index: PatternIndex,
    groups: Groups,
    assignments: Assignments,
    default_role: Option<u32>,
    policies: Vec<Policy>,
    policy_index: PatternIndex,
}

/// A principal resolved against an [`Authorizer`]: roles, scopes and claim patterns compiled once.
#[derive(Clone, Debug)]
pub struct Subject {
    principal: Principal,
    held: Vec<u64>,
    roles: Vec<(u32, RoleOrigin)>,
    role_names: Vec<String>,
    claims: Vec<Pattern>,
    claim_index: PatternIndex,
    notes: Vec<String>,
}

impl Subject {
    /// The principal it was resolved from.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The effective role names, each with where it came from.
    pub fn roles<'a>(&'a self) -> impl Iterator<Item = (&'a str, &'a RoleOrigin)> + 'a {
        self.role_names
            .iter()
            .map(String::as_str)
            .zip(self.roles.iter().map(|(_, o)| o))
    }

    /// Remarks from resolution (unknown roles or scopes, invalid claim patterns).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    fn holds(&self, source: u32) -> bool {
        self.held
            .get((source / 64) as usize)
            .is_some_and(|w| w & (1 << (source % 64)) != 0)
    }
}

/// A message the authorizer allowed. Only this crate can make one, so a forwarder that takes
/// `Permitted<Message>` cannot be handed a message that was never authorized.
#[derive(Clone, Debug)]
pub struct Permitted<T> {
    inner: T,
}

impl<T> Permitted<T> {
    /// The permitted value.
    pub fn get(&self) -> &T {
        &self.inner
    }
    /// Unwraps the permitted value.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

/// Counts from filtering one list result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListCounts {
    /// Items kept.
    pub shown: usize,
    /// Items removed.
    pub hidden: usize,
}

/// One permission check: who, what, with which inputs, and how much to explain.
#[derive(Clone, Copy)]
struct Query<'a> {
    subject: &'a Subject,
    perm: &'a Permission,
    arguments: Option<&'a Value>,
    ctx: &'a Context<'a>,
    phase: Phase,
    explain: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Call,
    List,
}

impl Authorizer {
    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The defined role names, in definition order.
    pub fn role_names(&self) -> &[String] {
        &self.role_names
    }

    /// The scopes `scope_map` defines, in config order.
    pub fn scope_names(&self) -> &[String] {
        &self.scope_names
    }

    /// Whether deciding a `tools/call` may need the upstream's tool annotations.
    pub fn needs_tool_catalog(&self) -> bool {
        self.groups.use_annotations()
    }

    /// How many grant patterns (roles and scopes) are indexed.
    pub fn grant_count(&self) -> usize {
        self.grants.len()
    }

    /// How many ABAC policies exist.
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }

    /// Resolves a principal's roles, scopes and claim patterns. Do this once per credential.
    pub fn resolve(&self, principal: Principal) -> Subject {
        let mut roles: Vec<(u32, RoleOrigin)> = Vec::new();
        let mut notes = Vec::new();
        let add = |roles: &mut Vec<(u32, RoleOrigin)>, id: u32, origin: RoleOrigin| {
            if !roles.iter().any(|(r, _)| *r == id) {
                roles.push((id, origin));
            }
        };
        if let Some(assigned) = self
            .assignments
            .get(&(principal.issuer.clone(), principal.subject.clone()))
        {
            for (id, origin) in assigned {
                add(&mut roles, *id, origin.clone());
            }
        }
        for name in &principal.roles {
            match self.role_ids.get(name) {
                Some(id) => add(&mut roles, *id, RoleOrigin::Credential),
                None => notes.push(format!("credential role `{name}` is not defined: ignored")),
            }
        }
        if let Some(id) = self.default_role {
            add(&mut roles, id, RoleOrigin::DefaultRole);
        }
        let words = (self.nroles as usize + self.scope_names.len()).div_ceil(64);
        let mut held = vec![0u64; words];
        let mut set = |bit: u32| held[(bit / 64) as usize] |= 1 << (bit % 64);
        for (id, _) in &roles {
            set(*id);
        }
        for scope in &principal.scopes {
            match self.scope_ids.get(scope) {
                Some(id) => set(*id),
                None => notes.push(format!(
                    "scope `{scope}` is not in scope_map: grants nothing"
                )),
            }
        }
        let mut claims = Vec::new();
        let mut claim_index = PatternIndex::new();
        for text in &principal.permissions {
            match Pattern::parse(text) {
                Ok(p) => {
                    if let TargetPattern::Group(g) = p.target()
                        && !self.groups.defines(p.domain().key(), g)
                    {
                        {
                            notes.push(format!(
                                "permission claim `{text}` names an unknown group: ignored"
                            ));
                            continue;
                        }
                    }
                    claim_index.insert(&p, claims.len() as u32);
                    claims.push(p);
                }
                Err(e) => notes.push(format!("permission claim ignored: {e}")),
            }
        }
        let role_names = roles
            .iter()
            .map(|(id, _)| self.role_names[*id as usize].clone())
            .collect();
        Subject {
            principal,
            held,
            roles,
            role_names,
            claims,
            claim_index,
            notes,
        }
    }

    /// Decides one operation (stops at the first grant; no explanation of denials).
    pub fn decide(&self, subject: &Subject, op: &Operation, ctx: &Context<'_>) -> Decision {
        self.evaluate(subject, op, ctx, false)
    }

    /// Decides and explains: every matching grant, unknown attributes, the nearest grant on deny.
    pub fn explain(&self, subject: &Subject, op: &Operation, ctx: &Context<'_>) -> Decision {
        self.evaluate(subject, op, ctx, true)
    }

    /// Authorizes a classified message: the only way to get a [`Permitted`] message.
    pub fn permit(
        &self,
        subject: &Subject,
        message: Message,
        ctx: &Context<'_>,
    ) -> (Decision, Option<Permitted<Message>>) {
        let decision = self.decide(subject, &message.operation, ctx);
        let permitted = decision.is_allow().then_some(Permitted { inner: message });
        (decision, permitted)
    }

    /// Like [`Authorizer::permit`], keeping the bytes the message was classified from beside it,
    /// so a forwarder that sends the original bytes takes them only from a permitted pair.
    pub fn permit_with<B>(
        &self,
        subject: &Subject,
        message: Message,
        bytes: B,
        ctx: &Context<'_>,
    ) -> (Decision, Option<Permitted<(Message, B)>>) {
        let decision = self.decide(subject, &message.operation, ctx);
        let permitted = decision.is_allow().then_some(Permitted {
            inner: (message, bytes),
        });
        (decision, permitted)
    }

    fn evaluate(
        &self,
        subject: &Subject,
        op: &Operation,
        ctx: &Context<'_>,
        explain: bool,
    ) -> Decision {
        match op {
            Operation::List(_) | Operation::ListTasks => {
                Decision::new(Verdict::Allow, None, Reason::ListFiltered)
            }
            Operation::Lifecycle(_) | Operation::ClientNotification(_) => {
                Decision::new(Verdict::Allow, None, Reason::AuthenticationOnly)
            }
            Operation::Task { .. } => match ctx.session.task_owned {
                Some(true) => Decision::new(Verdict::Allow, None, Reason::AuthenticationOnly),
                Some(false) => Decision::new(Verdict::Deny, None, Reason::TaskNotOwned),
                None => Decision::new(Verdict::Deny, None, Reason::TaskOwnerUnknown),
            },
            Operation::ClientResponse => match ctx.session.response_outstanding {
                Some(true) => Decision::new(Verdict::Allow, None, Reason::AuthenticationOnly),
                _ => Decision::new(Verdict::Deny, None, Reason::UnsolicitedResponse),
            },
            _ => match op.permission() {
                Some(perm) => {
                    self.decide_permission(subject, perm, op.arguments(), ctx, Phase::Call, explain)
                }
                // INVARIANT: every other operation has a permission; refuse rather than assume.
                None => Decision::new(Verdict::Deny, None, Reason::NoGrant),
            },
        }
    }

    fn decide_permission(
        &self,
        subject: &Subject,
        perm: Permission,
        arguments: Option<&Value>,
        ctx: &Context<'_>,
        phase: Phase,
        explain: bool,
    ) -> Decision {
        let mut notes = Vec::new();
        let q = Query {
            subject,
            perm: &perm,
            arguments,
            ctx,
            phase,
            explain,
        };
        let mut decision = match self.mode {
            Mode::Rbac => self.rbac(&q, &mut notes),
            Mode::Abac => self.abac(&q, false, &mut notes),
            Mode::RbacAbac => {
                let mut rbac = self.rbac(&q, &mut notes);
                if rbac.verdict == Verdict::Allow {
                    let abac = self.abac(&q, true, &mut notes);
                    if abac.verdict == Verdict::Deny {
                        rbac = abac;
                    } else {
                        rbac.unknown = abac.unknown;
                    }
                }
                rbac
            }
        };
        if explain {
            decision.notes.extend(notes.into_iter().map(|n| {
                format!(
                    "tool group `{}` is defined by annotations, and no tools/list annotations are known for `{}`: it matches nothing",
                    n.group, n.tool
                )
            }));
            decision.notes.extend(subject.notes.iter().cloned());
        }
        decision.permission = Some(perm);
        decision
    }

    fn in_group<'a>(
        &'a self,
        ctx: &'a Context<'_>,
        notes: &'a mut Vec<GroupNote>,
        explain: bool,
    ) -> impl FnMut(&str, &str, &str) -> bool + 'a {
        move |domain, group, target| {
            let notes = if explain { Some(&mut *notes) } else { None };
            self.groups
                .contains(domain, group, target, ctx.tools, notes)
        }
    }

    /// Decides by roles, claims and scopes; the caller fills in the permission.
    fn rbac(&self, q: &Query<'_>, notes: &mut Vec<GroupNote>) -> Decision {
        let Query {
            subject,
            perm,
            ctx,
            explain,
            ..
        } = *q;
        let mut matched = Vec::new();
        {
            let mut in_group = self.in_group(ctx, notes, explain);
            let _ = self.index.for_each_match(
                perm.domain,
                perm.action,
                &perm.target,
                // Grant patterns are tagged with their source (role or scope).
                &mut |source| subject.holds(source),
                &mut in_group,
                &mut |gid| {
                    matched.push(self.describe_grant(&self.grants[gid as usize]));
                    if explain {
                        ControlFlow::Continue(())
                    } else {
                        ControlFlow::Break(())
                    }
                },
            );
            if explain || matched.is_empty() {
                let _ = subject.claim_index.for_each_match(
                    perm.domain,
                    perm.action,
                    &perm.target,
                    &mut |_| true,
                    &mut in_group,
                    &mut |i| {
                        matched.push(Matched::PermissionClaim {
                            pattern: subject.claims[i as usize].text_arc(),
                        });
                        if explain {
                            ControlFlow::Continue(())
                        } else {
                            ControlFlow::Break(())
                        }
                    },
                );
            }
        }
        if !matched.is_empty() {
            let mut d = Decision::new(Verdict::Allow, None, Reason::Granted);
            d.matched = matched;
            return d;
        }
        let mut d = Decision::new(Verdict::Deny, None, Reason::NoGrant);
        if explain {
            d.nearest = self.nearest_grants(subject, perm, ctx);
        }
        d
    }

    fn describe_grant(&self, grant: &Grant) -> Matched {
        // Shared strings: an allow names its grant without allocating.
        let pattern = grant.pattern.text_arc();
        let name = self.source_names[grant.source as usize].clone();
        if grant.source < self.nroles {
            Matched::Role {
                role: name,
                pattern,
            }
        } else {
            Matched::Scope {
                scope: name,
                pattern,
            }
        }
    }

    /// Grants not held that would allow `perm`, else held patterns of the same domain and action.
    fn nearest_grants(
        &self,
        subject: &Subject,
        perm: &Permission,
        ctx: &Context<'_>,
    ) -> Vec<Nearest> {
        let mut out: Vec<Nearest> = Vec::new();
        let mut sources = HashSet::new();
        let mut ignored = Vec::new();
        let mut in_group = self.in_group(ctx, &mut ignored, false);
        let _ = self.index.for_each_match(
            perm.domain,
            perm.action,
            &perm.target,
            &mut |source| !subject.holds(source),
            &mut in_group,
            &mut |gid| {
                let grant = &self.grants[gid as usize];
                if sources.insert(grant.source) {
                    out.push(match self.describe_grant(grant) {
                        Matched::Role { role, pattern } => Nearest::Role {
                            role: role.to_string(),
                            pattern: pattern.to_string(),
                        },
                        Matched::Scope { scope, pattern } => Nearest::Scope {
                            scope: scope.to_string(),
                            pattern: pattern.to_string(),
                        },
                        _ => return ControlFlow::Continue(()),
                    });
                }
                if out.len() >= 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        if !out.is_empty() {
            return out;
        }
        let same_action =
            |p: &Pattern| p.domain().matches(perm.domain) && p.action().matches(perm.action);
        for grant in &self.grants {
            if subject.holds(grant.source) && same_action(&grant.pattern) {
                let source = match self.describe_grant(grant) {
                    Matched::Role { role, .. } => format!("role `{role}`"),
                    Matched::Scope { scope, .. } => format!("scope `{scope}`"),
                    _ => String::new(),
                };
                out.push(Nearest::HeldSameAction {
                    source,
                    pattern: grant.pattern.as_str().to_owned(),
                });
            }
        }
        for p in &subject.claims {
            if same_action(p) {
                out.push(Nearest::HeldSameAction {
                    source: "permission claim".into(),
                    pattern: p.as_str().to_owned(),
                });
            }
        }
        out.truncate(3);
        out
    }

    /// The scopes, fewest first and in config order, that would grant `perm` (for 403 challenges).
    pub fn scopes_granting(&self, perm: &Permission, ctx: &Context<'_>) -> Vec<String> {
        let mut best: Option<u32> = None;
        let mut ignored = Vec::new();
        let mut in_group = self.in_group(ctx, &mut ignored, false);
        let _ = self.index.for_each_match(
            perm.domain,
            perm.action,
            &perm.target,
            &mut |source| source >= self.nroles,
            &mut in_group,
            &mut |gid| {
                let source = self.grants[gid as usize].source;
                if best.is_none_or(|b| source < b) {
                    best = Some(source);
                }
                ControlFlow::Continue(())
            },
        );
        best.map(|s| vec![self.scope_names[(s - self.nroles) as usize].clone()])
            .unwrap_or_default()
    }

    /// Decides by ABAC policies (only denies when `deny_only`); the caller fills in the permission.
    fn abac(&self, q: &Query<'_>, deny_only: bool, notes: &mut Vec<GroupNote>) -> Decision {
        let Query {
            subject,
            perm,
            arguments,
            ctx,
            phase,
            explain,
        } = *q;
        let mut candidates: Vec<u32> = Vec::new();
        {
            let mut in_group = self.in_group(ctx, notes, explain);
            let _ = self.policy_index.for_each_match(
                perm.domain,
                perm.action,
                &perm.target,
                &mut |i| !deny_only || self.policies[i as usize].effect == Effect::Deny,
                &mut in_group,
                &mut |i| {
                    candidates.push(i);
                    ControlFlow::Continue(())
                },
            );
        }
        candidates.sort_unstable();
        candidates.dedup();
        let attrs = RequestAttributes {
            subject,
            perm,
            arguments,
            ctx,
            list_time: phase == Phase::List,
        };
        let mut unknown: Vec<UnknownAttribute> = Vec::new();
        let mut deny_by: Option<&Policy> = None;
        let mut allow_by: Vec<&Policy> = Vec::new();
        let mut near: Vec<Nearest> = Vec::new();
        for i in candidates {
            let policy = &self.policies[i as usize];
            if deny_only && policy.effect == Effect::Allow {
                continue;
            }
            let mut sink = explain.then_some(&mut unknown);
            let outcome = policy.conditions.eval(&attrs, &policy.id, &mut sink);
            match policy.effect {
                Effect::Deny if outcome.deny_applies() => {
                    if deny_by.is_none() {
                        deny_by = Some(policy);
                    }
                    if !explain {
                        break;
                    }
                }
                Effect::Allow if outcome.allow_applies() => allow_by.push(policy),
                Effect::Allow if explain => near.push(Nearest::Policy {
                    id: policy.id.clone(),
                }),
                _ => {}
            }
        }
        let (verdict, reason) = match (deny_by, allow_by.is_empty()) {
            (Some(p), _) => (Verdict::Deny, Reason::DeniedByPolicy(p.id.clone())),
            (None, _) if deny_only => (Verdict::Allow, Reason::Granted),
            (None, false) => (Verdict::Allow, Reason::Granted),
            (None, true) => (Verdict::Deny, Reason::NoAllowPolicy),
        };
        let mut d = Decision::new(verdict, None, reason);
        if let Some(p) = deny_by {
            d.matched.push(Matched::Policy {
                id: p.id.as_str().into(),
                effect: "deny",
            });
        } else {
            for p in allow_by {
                d.matched.push(Matched::Policy {
                    id: p.id.as_str().into(),
                    effect: "allow",
                });
            }
        }
        if verdict == Verdict::Deny {
            d.nearest = near;
        }
        d.unknown = unknown;
        d
    }

    /// Whether a list item named `id` stays visible: some call to it could be allowed.
    pub fn item_visible(
        &self,
        subject: &Subject,
        kind: ListKind,
        id: &str,
        ctx: &Context<'_>,
    ) -> bool {
        let perm = kind.item_permission(id);
        self.decide_permission(subject, perm, None, ctx, Phase::List, false)
            .is_allow()
    }

    /// Removes from a list result (`{"tools": [...]}` and the like) the items the principal may not
    /// use. Items without a string name are removed too.
    pub fn filter_list(
        &self,
        subject: &Subject,
        kind: ListKind,
        result: &mut Value,
        ctx: &Context<'_>,
    ) -> ListCounts {
        // Tool groups read the upstream's own annotations from this very list.
        let own_catalog;
        let ctx = if kind == ListKind::Tools && ctx.tools.is_none() {
            own_catalog = ToolCatalog::from_list_result(result);
            ctx.with_tools(&own_catalog)
        } else {
            *ctx
        };
        let Some(items) = result
            .get_mut(kind.result_key())
            .and_then(Value::as_array_mut)
        else {
            return ListCounts::default();
        };
        let before = items.len();
        items.retain(|item| {
            item.get(kind.item_key())
                .and_then(Value::as_str)
                .is_some_and(|id| self.item_visible(subject, kind, id, &ctx))
        });
        ListCounts {
            shown: items.len(),
            hidden: before - items.len(),
        }
    }
}

struct RequestAttributes<'a> {
    subject: &'a Subject,
    perm: &'a Permission,
    arguments: Option<&'a Value>,
    ctx: &'a Context<'a>,
    list_time: bool,
}

fn direct(s: Option<&str>) -> Lookup<'_> {
    s.map_or(Lookup::Missing, |s| Lookup::Found(Val::Str(s)))
}

fn found_or_missing(v: Option<&Value>) -> Lookup<'_> {
    v.map_or(Lookup::Missing, |v| Lookup::Found(Val::Json(v)))
}

impl Attributes for RequestAttributes<'_> {
    fn lookup(&self, path: &AttributePath) -> Lookup<'_> {
        let first = path.rest.first().map(|s| &**s);
        let p = &self.subject.principal;
        match &path.root {
            Root::Action => Lookup::Found(Val::Str(self.perm.action)),
            Root::Subject => {
                if path.rest.len() == 1 {
                    match first {
                        Some("id" | "subject") => return Lookup::Found(Val::Str(&p.subject)),
                        Some("issuer") => return direct(p.issuer.as_deref()),
                        Some("client_id") => return direct(p.client_id.as_deref()),
                        Some("tenant") => return direct(p.tenant.as_deref()),
                        Some("auth_method") => {
                            return Lookup::Found(Val::Str(p.auth_method.as_str()));
                        }
                        Some("roles") => return Lookup::Found(Val::List(&self.subject.role_names)),
                        Some("scopes") => return Lookup::Found(Val::List(&p.scopes)),
                        Some("permissions") => return Lookup::Found(Val::List(&p.permissions)),
                        _ => {}
                    }
                }
                let Some(key) = first else {
                    return Lookup::Missing;
                };
                found_or_missing(p.attributes.get(key).and_then(|v| walk(v, &path.rest[1..])))
            }
            Root::Resource => match first {
                Some("domain") if path.rest.len() == 1 => Lookup::Found(Val::Str(self.perm.domain)),
                Some("target" | "name" | "uri") if path.rest.len() == 1 => {
                    Lookup::Found(Val::Str(&self.perm.target))
                }
                Some("arguments") => {
                    if self.list_time {
                        return Lookup::Free;
                    }
                    found_or_missing(self.arguments.and_then(|a| walk(a, &path.rest[1..])))
                }
                _ => Lookup::Missing,
            },
            Root::Environment => {
                let env = self.ctx.environment;
                match first {
                    Some("time") => env
                        .now_unix
                        .map_or(Lookup::Missing, |t| Lookup::Found(Val::Int(t))),
                    Some("hour") => env
                        .hour()
                        .map_or(Lookup::Missing, |h| Lookup::Found(Val::Int(h))),
                    Some("weekday") => env
                        .weekday()
                        .map_or(Lookup::Missing, |d| Lookup::Found(Val::Str(d))),
                    Some("ip") => env
                        .client_ip
                        .as_deref()
                        .map_or(Lookup::Missing, |s| Lookup::Found(Val::Str(s))),
                    Some("user_agent") => env
                        .user_agent
                        .as_deref()
                        .map_or(Lookup::Missing, |s| Lookup::Found(Val::Str(s))),
                    _ => Lookup::Missing,
                }
            }
            Root::Provider(name) => match self.ctx.attributes.get(name) {
                None => Lookup::Unknown(UnknownReason::NoProvider),
                Some(ProviderResult::Unavailable(why)) => {
                    Lookup::Unknown(UnknownReason::ProviderFailed(why.clone()))
                }
                Some(ProviderResult::Available(v)) => found_or_missing(walk(v, &path.rest)),
            },
        }
    }
}

#[cfg(test)]
mod tests;
