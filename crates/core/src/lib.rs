//! The authorization core of mcp-guard.
//!
//! Guarantees:
//! - It does no I/O, spawns nothing, has no async and reads no clock: time, attributes and
//!   annotations are inputs, so every decision is a pure function of its arguments.
//! - A message is classified from its raw bytes by a strict parse (one JSON value, no repeated keys,
//!   a valid JSON-RPC envelope); anything else is refused with a JSON-RPC error, never passed on.
//! - Unknown means deny: a missing attribute, a failed provider, an undefined role or scope, an
//!   annotation that is not there, or an unknown task owner can only take access away.
//! - Pattern characters other than `*` (and a whole-target `@group`) are literal.
//! - Only [`Authorizer::permit`] makes a [`Permitted`] message.

pub mod abac;
mod authorizer;
pub mod context;
mod decision;
pub mod group;
mod index;
mod json;
pub mod message;
mod operation;
pub mod pattern;
mod principal;

pub use authorizer::{
    Assignment, Authorizer, AuthorizerBuilder, BuildError, DEFAULT_ROLES, ListCounts, Mode,
    Permitted, Subject,
};
pub use context::{Context, Environment, ProvidedAttributes, SessionFacts, ToolCatalog};
pub use decision::{
    Decision, Matched, Nearest, Reason, RoleOrigin, UnknownAttribute, UnknownReason, Verdict,
};
pub use index::PatternIndex;
pub use json::{StrictJsonError, StrictValue, parse_strict};
pub use message::{
    BatchItem, Classified, ClassifyOptions, Message, MessageKind, RequestId, RpcError, classify,
    classify_parsed, codes,
};
pub use operation::{CompletionRef, ListKind, Operation, Permission, TaskMethod};
pub use pattern::{Pattern, PatternError};
pub use principal::{Attributes, AuthMethod, Principal};

/// Entry points for fuzz targets and corpus replay. Not part of the stable interface.
#[doc(hidden)]
pub mod fuzzing {
    /// Classifies arbitrary bytes both with and without batches allowed.
    pub fn classify_bytes(data: &[u8]) {
        for allow_batch in [false, true] {
            let _ = crate::classify(
                data,
                crate::ClassifyOptions {
                    allow_batch,
                    max_batch: 16,
                },
            );
        }
    }

    /// Compiles arbitrary text as a pattern and, when it compiles, matches it against itself.
    pub fn pattern_parse(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(p) = crate::Pattern::parse(text) {
            let mut parts = text.splitn(3, ':');
            let (d, a, t) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let _ = p.matches_ungrouped(d, a, t);
            let mut index = crate::PatternIndex::new();
            index.insert(&p, 0);
            let _ = index.for_each_match(d, a, t, &mut |_| true, &mut |_, _, _| true, &mut |_| {
                std::ops::ControlFlow::Continue(())
            });
        }
    }
}
