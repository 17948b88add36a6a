//! Decisions and their explanations (DESIGN.md section 7).

use std::fmt;
use std::sync::Arc;

use crate::operation::Permission;

/// Allow or deny. Complete by definition, so it stays exhaustive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The operation may proceed.
    Allow,
    /// The operation is refused.
    Deny,
}

impl Verdict {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

/// Where a grant came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleOrigin {
    /// A `[[users]]` entry in configuration.
    Assigned,
    /// `authorization.admin_users`.
    AdminUsers,
    /// The credential's roles (token claim, trusted-client entry).
    Credential,
    /// `authorization.default_role`, given to every authenticated principal.
    DefaultRole,
}

impl RoleOrigin {
    /// A short name for explanations.
    pub fn as_str(&self) -> &'static str {
        match self {
            RoleOrigin::Assigned => "config assignment",
            RoleOrigin::AdminUsers => "admin_users",
            RoleOrigin::Credential => "credential roles",
            RoleOrigin::DefaultRole => "default role",
        }
    }
}

/// Something that matched: a grant, or a policy that decided. Strings are shared with the
/// authorizer, so naming what granted a decision costs no allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matched {
    /// A role's pattern.
    Role {
        /// The role.
        role: Arc<str>,
        /// The pattern that matched.
        pattern: Arc<str>,
    },
    /// A pattern from the credential's `permissions` claim.
    PermissionClaim {
        /// The pattern that matched.
        pattern: Arc<str>,
    },
    /// A pattern that `scope_map` gives for a scope.
    Scope {
        /// The scope.
        scope: Arc<str>,
        /// The pattern that matched.
        pattern: Arc<str>,
    },
    /// An ABAC policy that applied.
    Policy {
        /// Its id.
        id: Arc<str>,
        /// `allow` or `deny`.
        effect: &'static str,
    },
}

impl Matched {
    /// `role`, `permission_claim`, `scope` or `policy`.
    pub fn source(&self) -> &'static str {
        match self {
            Matched::Role { .. } => "role",
            Matched::PermissionClaim { .. } => "permission_claim",
            Matched::Scope { .. } => "scope",
            Matched::Policy { .. } => "policy",
        }
    }
}

impl fmt::Display for Matched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matched::Role { role, pattern } => write!(f, "role `{role}` via `{pattern}`"),
            Matched::PermissionClaim { pattern } => {
                write!(f, "the credential's permission `{pattern}`")
            }
            Matched::Scope { scope, pattern } => write!(f, "scope `{scope}` via `{pattern}`"),
            Matched::Policy { id, effect } => write!(f, "{effect} policy `{id}`"),
        }
    }
}

/// Why an attribute had no usable value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnknownReason {
    /// The attribute is not there.
    Missing,
    /// Its attribute provider failed.
    ProviderFailed(String),
    /// No provider of that name ran.
    NoProvider,
    /// The value has a type the operator cannot compare.
    WrongType,
}

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnknownReason::Missing => f.write_str("missing"),
            UnknownReason::ProviderFailed(why) => write!(f, "provider failed: {why}"),
            UnknownReason::NoProvider => f.write_str("no such attribute provider ran"),
            UnknownReason::WrongType => f.write_str("wrong type for the operator"),
        }
    }
}

/// An attribute whose value was unknown while deciding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownAttribute {
    /// Its path, e.g. `subject.department`.
    pub path: String,
    /// Why it was unknown.
    pub reason: UnknownReason,
    /// The policy whose condition read it.
    pub policy: String,
}

/// Why the decision came out as it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A grant or an allow policy allowed it; see `matched`.
    Granted,
    /// The operation needs only authentication.
    AuthenticationOnly,
    /// A list request: allowed, each item filtered.
    ListFiltered,
    /// No role, claim or scope grants the permission.
    NoGrant,
    /// A deny policy applied (possibly because an attribute was unknown).
    DeniedByPolicy(String),
    /// No allow policy applied (ABAC's default deny).
    NoAllowPolicy,
    /// The task belongs to another principal.
    TaskNotOwned,
    /// Task ownership is unknown here (only the session layer knows it).
    TaskOwnerUnknown,
    /// A client response whose id answers no outstanding server request (or that is not known).
    UnsolicitedResponse,
}

impl Reason {
    /// A short, bounded name for metrics and scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Granted => "granted",
            Reason::AuthenticationOnly => "authentication_only",
            Reason::ListFiltered => "list_filtered",
            Reason::NoGrant => "no_grant",
            Reason::DeniedByPolicy(_) => "denied_by_policy",
            Reason::NoAllowPolicy => "no_allow_policy",
            Reason::TaskNotOwned => "task_not_owned",
            Reason::TaskOwnerUnknown => "task_owner_unknown",
            Reason::UnsolicitedResponse => "unsolicited_response",
        }
    }
}

/// A grant the principal does not hold that would have allowed the operation, or the closest one
/// it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Nearest {
    /// Holding this role would allow it.
    Role {
        /// The role.
        role: String,
        /// Its pattern that matches.
        pattern: String,
    },
    /// Holding this scope would allow it.
    Scope {
        /// The scope.
        scope: String,
        /// The pattern `scope_map` gives for it that matches.
        pattern: String,
    },
    /// A held pattern of the same domain and action that does not match.
    HeldSameAction {
        /// Where the pattern comes from (role name, `permission claim`, scope).
        source: String,
        /// The pattern.
        pattern: String,
    },
    /// An allow policy whose target matched but whose conditions did not hold.
    Policy {
        /// Its id.
        id: String,
    },
}

impl fmt::Display for Nearest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nearest::Role { role, pattern } => {
                write!(f, "role `{role}` would allow it via `{pattern}`")
            }
            Nearest::Scope { scope, pattern } => {
                write!(f, "scope `{scope}` would allow it via `{pattern}`")
            }
            Nearest::HeldSameAction { source, pattern } => {
                write!(
                    f,
                    "closest held grant: `{pattern}` ({source}) does not match"
                )
            }
            Nearest::Policy { id } => {
                write!(
                    f,
                    "allow policy `{id}` applies to it, but its conditions did not hold"
                )
            }
        }
    }
}

/// The outcome of authorizing one operation, with what it needs to be explained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The permission checked, if the operation needs one.
    pub permission: Option<Permission>,
    /// Why.
    pub reason: Reason,
    /// What granted it, or the deny policy that refused it.
    pub matched: Vec<Matched>,
    /// Attributes that were unknown.
    pub unknown: Vec<UnknownAttribute>,
    /// On deny, grants that would have allowed it (filled when explaining).
    pub nearest: Vec<Nearest>,
    /// Further remarks (e.g. annotation groups that could not be used).
    pub notes: Vec<String>,
}

impl Decision {
    /// Whether the verdict is allow.
    pub fn is_allow(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    pub(crate) fn new(verdict: Verdict, permission: Option<Permission>, reason: Reason) -> Self {
        Decision {
            verdict,
            permission,
            reason,
            matched: Vec::new(),
            unknown: Vec::new(),
            nearest: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// One sentence saying why, for people and for the audit log.
    pub fn explain(&self) -> String {
        let perm = self
            .permission
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        match &self.reason {
            Reason::Granted => match self.matched.first() {
                Some(m) => format!("`{perm}` granted by {m}"),
                None => format!("`{perm}` granted"),
            },
            Reason::AuthenticationOnly => "authentication only: any authenticated principal".into(),
            Reason::ListFiltered => {
                "list request: any authenticated principal; items filtered to what it may use"
                    .into()
            }
            Reason::NoGrant => {
                format!("missing permission `{perm}`: no role, permission claim or scope grants it")
            }
            Reason::DeniedByPolicy(id) => {
                if self.unknown.iter().any(|u| *u.policy == **id) {
                    format!(
                        "`{perm}` denied by policy `{id}` (its conditions were unknown, so the deny applies)"
                    )
                } else {
                    format!("`{perm}` denied by policy `{id}`")
                }
            }
            Reason::NoAllowPolicy => {
                format!("missing permission `{perm}`: no allow policy applies (default deny)")
            }
            Reason::TaskNotOwned => "the task belongs to another principal".into(),
            Reason::TaskOwnerUnknown => "task ownership is unknown, so access is refused".into(),
            Reason::UnsolicitedResponse => {
                "the response answers no outstanding server-to-client request".into()
            }
        }
    }
}
