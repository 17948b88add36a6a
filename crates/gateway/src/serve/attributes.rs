//! Attribute providers on the request path (DESIGN.md section 6): the providers the policies read
//! run before the core decides, at most once per request (a batch shares the results), and only
//! for messages whose decision can read them. An RBAC-only configuration runs none.

use mcp_guard_auth::attributes::Asker;
use mcp_guard_core::{
    Authorizer, Context, Decision, Operation, ProvidedAttributes, Subject, Verdict,
};
use tokio::sync::OnceCell;

use super::Rules;

/// Provider results for one request, gathered on first need.
#[derive(Default)]
pub(super) struct RequestAttributes {
    cell: OnceCell<ProvidedAttributes>,
}

impl RequestAttributes {
    /// The results a decision on `op` may read, gathering them if this is the first message of
    /// the request that needs them; `None` when nothing needs to run.
    pub(super) async fn for_operation(
        &self,
        rules: &Rules,
        asker: Asker<'_>,
        op: &Operation,
    ) -> Option<&ProvidedAttributes> {
        if rules.attributes.providers.is_empty() || !reads_attributes(op) {
            return None;
        }
        let settings = &rules.attributes;
        Some(
            self.cell
                .get_or_init(|| settings.providers.gather(asker, settings.timeout))
                .await,
        )
    }

    /// The results already gathered for this request (list filtering after the answer).
    pub(super) fn gathered(&self) -> Option<&ProvidedAttributes> {
        self.cell.get()
    }
}

/// Whether a decision on `op` can read provider attributes: those with a permission, and lists
/// (each item is decided as a possible call).
pub(crate) fn reads_attributes(op: &Operation) -> bool {
    !matches!(
        op,
        Operation::Lifecycle(_)
            | Operation::ClientNotification(_)
            | Operation::Task { .. }
            | Operation::ListTasks
            | Operation::ClientResponse
    )
}

/// The operation to explain again for the audit line, kept only when provider results fed the
/// decision (the fast path of the core does not record unknown attributes).
pub(crate) fn keep_for_audit(
    attributes: Option<&ProvidedAttributes>,
    op: &Operation,
) -> Option<Operation> {
    match (attributes, op) {
        (None, _) | (_, Operation::List(_)) => None,
        (Some(a), _) if a.is_empty() => None,
        (Some(_), op) => Some(op.clone()),
    }
}

/// Fills in which attributes were unknown and why, when that can matter: the decision denied,
/// or some provider failed. The verdict is the core's first answer; only the explanation is
/// added.
pub(crate) fn note_unknown(
    authorizer: &Authorizer,
    subject: &Subject,
    op: &Operation,
    ctx: &Context<'_>,
    decision: &mut Decision,
) {
    if decision.verdict == Verdict::Deny || ctx.attributes.any_unavailable() {
        decision.unknown = authorizer.explain(subject, op, ctx).unknown;
    }
}
