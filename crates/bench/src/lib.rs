//! Workloads for the authorization benchmarks (`benches/authz.rs`), shared by the benchmark, the
//! Cedar policy generator (`src/bin/gen_cedar.rs`) and the agreement test.
//!
//! Each workload is plain data generated from a fixed seed: roles and their target patterns
//! ([`rbac::RbacWorkload`]) or attribute policies ([`abac::AbacWorkload`]), plus 64 requests. Both
//! engines are built from that one description, so the mcp-guard configuration and the Cedar
//! policy set are equivalent by construction, and the test checks that they return the same
//! decision on every request (and that both agree with a naive reference evaluator).
//!
//! Everything that the benchmark times is prebuilt here: the mcp-guard [`Authorizer`] and resolved
//! [`Subject`]s and operations; the Cedar [`PolicySet`], [`Entities`] and [`Request`]s.

pub mod abac;
pub mod rbac;

use mcp_guard_core::{Authorizer, Context, Environment, Operation, ProvidedAttributes, Subject};

use cedar_policy::{Entities, PolicySet, Request};

/// The error type of workload setup.
pub type BoxError = Box<dyn std::error::Error>;

/// How many prebuilt requests each workload cycles through.
pub const REQUESTS: usize = 64;

/// The committed Cedar policies for the 10-role RBAC workload.
pub const RBAC_10_CEDAR: &str = include_str!("../cedar/rbac_10.cedar");
/// The committed Cedar policies for the 1,000-role RBAC workload.
pub const RBAC_1000_CEDAR: &str = include_str!("../cedar/rbac_1000.cedar");
/// The committed Cedar policies for the 100-policy ABAC workload.
pub const ABAC_100_CEDAR: &str = include_str!("../cedar/abac_100.cedar");

/// A small xorshift64* generator: deterministic across platforms and releases.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (zero is replaced, since xorshift would stay at zero).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// One item of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A copy of one item of a non-empty slice.
    pub fn choose<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// `k` distinct indices in `0..n`, in the order drawn.
    pub fn distinct(&mut self, k: usize, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(k);
        while out.len() < k.min(n) {
            let i = self.below(n);
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (empty included) and
/// every other character is literal. A deliberately naive reference, independent of both engines.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            back = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((bp, bt)) = back {
            pi = bp + 1;
            ti = bt + 1;
            back = Some((bp, bt + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A Cedar string literal.
pub(crate) fn cedar_str(s: &str) -> String {
    // Debug escapes `"` and `\` the way Cedar reads them; workload strings need no other escape.
    format!("{s:?}")
}

/// The Cedar condition that `resource.name` matches a target pattern.
pub(crate) fn cedar_target(target: &str) -> String {
    if target.contains('*') {
        // In `like`, `*` is the wildcard and other characters are literal, as in mcp-guard targets.
        format!("resource.name like {}", cedar_str(target))
    } else {
        format!("resource.name == {}", cedar_str(target))
    }
}

/// The mcp-guard side of a workload, built once.
#[derive(Debug)]
pub struct GuardSetup {
    /// The compiled roles or policies.
    pub authorizer: Authorizer,
    /// Principals resolved once (the equivalent of Cedar's prebuilt entities).
    pub subjects: Vec<Subject>,
    /// Prebuilt requests: a subject index and a `tools/call` operation.
    pub requests: Vec<(usize, Operation)>,
    environment: Environment,
    attributes: ProvidedAttributes,
}

impl GuardSetup {
    pub(crate) fn new(
        authorizer: Authorizer,
        subjects: Vec<Subject>,
        requests: Vec<(usize, Operation)>,
    ) -> Self {
        GuardSetup {
            authorizer,
            subjects,
            requests,
            environment: Environment::default(),
            attributes: ProvidedAttributes::new(),
        }
    }

    /// The (empty) decision context: no clock, no providers, no tool catalog.
    pub fn context(&self) -> Context<'_> {
        Context::new(&self.environment, &self.attributes)
    }

    /// Decides request `i` (the fast path: no explanation).
    pub fn decide(&self, ctx: &Context<'_>, i: usize) -> bool {
        let (subject, op) = &self.requests[i];
        self.authorizer
            .decide(&self.subjects[*subject], op, ctx)
            .is_allow()
    }
}

/// The Cedar side of a workload, built once.
#[derive(Debug)]
pub struct CedarSetup {
    /// The authorizer (stateless).
    pub authorizer: cedar_policy::Authorizer,
    /// The parsed policies.
    pub policies: PolicySet,
    /// Users, roles and tools.
    pub entities: Entities,
    /// Prebuilt requests.
    pub requests: Vec<Request>,
}

impl CedarSetup {
    pub(crate) fn new(
        policy_text: &str,
        entities: serde_json::Value,
        requests: Vec<Request>,
    ) -> Result<Self, BoxError> {
        Ok(CedarSetup {
            authorizer: cedar_policy::Authorizer::new(),
            policies: policy_text.parse()?,
            entities: Entities::from_json_value(entities, None)?,
            requests,
        })
    }

    /// The full response to request `i`, with diagnostics.
    pub fn response(&self, i: usize) -> cedar_policy::Response {
        self.authorizer
            .is_authorized(&self.requests[i], &self.policies, &self.entities)
    }

    /// Decides request `i`.
    pub fn decide(&self, i: usize) -> bool {
        self.response(i).decision() == cedar_policy::Decision::Allow
    }
}

/// A Cedar entity uid from type and id.
pub(crate) fn cedar_uid(ty: &str, id: &str) -> Result<cedar_policy::EntityUid, BoxError> {
    Ok(cedar_policy::EntityUid::from_type_name_and_id(
        ty.parse()?,
        cedar_policy::EntityId::new(id),
    ))
}

/// A Cedar `tools/call` request: `User::principal` doing `Action::"execute"` on `Tool::tool`.
pub(crate) fn cedar_request(
    principal: &str,
    tool: &str,
    context: serde_json::Value,
) -> Result<Request, BoxError> {
    Ok(Request::new(
        cedar_uid("User", principal)?,
        cedar_uid("Action", "execute")?,
        cedar_uid("Tool", tool)?,
        cedar_policy::Context::from_json_value(context, None)?,
        None,
    )?)
}

/// The Cedar `Tool` entities named by `tools`, each with its `name` attribute.
pub(crate) fn cedar_tools<'a>(tools: impl Iterator<Item = &'a str>) -> Vec<serde_json::Value> {
    let mut seen = std::collections::BTreeSet::new();
    tools
        .filter(|t| seen.insert(*t))
        .map(|t| {
            serde_json::json!({
                "uid": {"type": "Tool", "id": t},
                "attrs": {"name": t},
                "parents": [],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_glob() {
        assert!(glob_matches("a*", "a"));
        assert!(glob_matches("a*c", "abbbc"));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxbyy"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("abc", "abcd"));
        assert!(glob_matches("svc_*_x", "svc_a_b_x"));
        assert!(!glob_matches("svc_*_x", "svc_x"));
    }

    #[test]
    fn committed_cedar_files_are_current() {
        let hint = "run `cargo run -p mcp-guard-bench --bin gen_cedar`";
        assert!(
            RBAC_10_CEDAR == rbac::RbacWorkload::small().cedar_policies(),
            "cedar/rbac_10.cedar is stale: {hint}"
        );
        assert!(
            RBAC_1000_CEDAR == rbac::RbacWorkload::large().cedar_policies(),
            "cedar/rbac_1000.cedar is stale: {hint}"
        );
        assert!(
            ABAC_100_CEDAR == abac::AbacWorkload::standard().cedar_policies(),
            "cedar/abac_100.cedar is stale: {hint}"
        );
    }

    /// Both engines and the reference agree on every request, and Cedar reports no errors.
    fn check_agreement(guard: &GuardSetup, cedar: &CedarSetup, expected: &[bool], what: &str) {
        assert_eq!(guard.requests.len(), REQUESTS, "{what}");
        assert_eq!(cedar.requests.len(), REQUESTS, "{what}");
        let ctx = guard.context();
        for (i, want) in expected.iter().enumerate() {
            let response = cedar.response(i);
            let errors: Vec<String> = response
                .diagnostics()
                .errors()
                .map(ToString::to_string)
                .collect();
            assert!(
                errors.is_empty(),
                "{what} request {i}: Cedar errors {errors:?}"
            );
            let cedar_allows = response.decision() == cedar_policy::Decision::Allow;
            assert_eq!(
                cedar_allows, *want,
                "{what} request {i}: Cedar vs reference"
            );
            assert_eq!(
                guard.decide(&ctx, i),
                *want,
                "{what} request {i}: mcp-guard vs reference"
            );
        }
        let allowed = expected.iter().filter(|a| **a).count();
        assert_eq!(
            allowed,
            REQUESTS / 2,
            "{what}: half the requests are allowed"
        );
    }

    #[test]
    fn rbac_small_engines_agree() {
        let w = rbac::RbacWorkload::small();
        assert_eq!(
            (w.roles.len(), w.pattern_count(), w.held.len()),
            (10, 50, 10)
        );
        let cedar = w.cedar(RBAC_10_CEDAR).unwrap();
        assert_eq!(cedar.policies.num_of_policies(), 10);
        check_agreement(&w.guard().unwrap(), &cedar, &w.expected, "rbac 10x5");
    }

    #[test]
    fn rbac_large_engines_agree() {
        let w = rbac::RbacWorkload::large();
        assert_eq!(
            (w.roles.len(), w.pattern_count(), w.held.len()),
            (1000, 10_000, 10)
        );
        let cedar = w.cedar(RBAC_1000_CEDAR).unwrap();
        assert_eq!(cedar.policies.num_of_policies(), 1000);
        check_agreement(&w.guard().unwrap(), &cedar, &w.expected, "rbac 1000x10");
        // Denials include tools that roles the principal does not hold would grant.
        let granted_elsewhere = w
            .requests
            .iter()
            .zip(&w.expected)
            .filter(|(t, allowed)| {
                !**allowed
                    && w.roles
                        .iter()
                        .any(|r| r.targets.iter().any(|p| glob_matches(p, t)))
            })
            .count();
        assert!(granted_elsewhere >= REQUESTS / 4, "{granted_elsewhere}");
    }

    #[test]
    fn rbac_targets_are_mixed() {
        let w = rbac::RbacWorkload::large();
        let targets = w.roles.iter().flat_map(|r| &r.targets);
        let (mut literal, mut prefix, mut infix) = (0, 0, 0);
        for t in targets {
            match t.find('*') {
                None => literal += 1,
                Some(i) if i + 1 == t.len() => prefix += 1,
                Some(_) => infix += 1,
            }
        }
        assert!(
            literal > 3000 && prefix > 2000 && infix > 2000,
            "{literal} {prefix} {infix}"
        );
    }

    #[test]
    fn abac_engines_agree() {
        let w = abac::AbacWorkload::standard();
        assert_eq!(w.policies.len(), 100);
        let (allow, deny) = w.effects();
        assert!(allow > 60 && deny > 10, "{allow} {deny}");
        let guard = w.guard().unwrap();
        assert_eq!(guard.authorizer.policy_count(), 100);
        let cedar = w.cedar(ABAC_100_CEDAR).unwrap();
        assert_eq!(cedar.policies.num_of_policies(), 100);
        check_agreement(&guard, &cedar, &w.expected, "abac 100");
    }

    #[test]
    fn abac_denials_come_from_forbid_and_from_no_permit() {
        let w = abac::AbacWorkload::standard();
        let (mut forbidden, mut no_permit, mut candidates) = (0, 0, 0);
        for (r, allowed) in w.requests.iter().zip(&w.expected) {
            let (permits, forbids) = w.applicable(r);
            candidates += w
                .policies
                .iter()
                .filter(|p| glob_matches(&p.target, &r.tool))
                .count();
            if !allowed {
                if forbids > 0 && permits > 0 {
                    forbidden += 1;
                } else if permits == 0 {
                    no_permit += 1;
                }
            }
        }
        println!(
            "abac: {forbidden} overridden by forbid, {no_permit} without permit, {candidates} candidates"
        );
        assert!(forbidden >= 8 && no_permit >= 8, "{forbidden} {no_permit}");
        // Requests name tools that several policies target, so conditions really are evaluated.
        assert!(candidates >= 2 * REQUESTS, "{candidates}");
    }

    #[test]
    fn rng_is_stable() {
        let mut r = Rng::new(1);
        let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut r = Rng::new(1);
        let again: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(first, again);
        assert_eq!(Rng::new(7).distinct(5, 5).len(), 5);
    }
}
