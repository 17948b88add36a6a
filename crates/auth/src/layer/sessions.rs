//! Which principal opened each session of the inner service, and what the layer remembers per
//! session: server-to-client requests awaiting the client's answer, and the tool annotations
//! the server listed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mcp_guard_core::{Principal, RequestId, ToolCatalog};

/// How many unanswered server-to-client requests a session remembers; the client's answer to a
/// forgotten one is refused as unsolicited.
const REMEMBERED: usize = 64;

/// Whose a session is: DESIGN.md section 3 binds sessions to `(issuer, subject, client_id)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Owner {
    issuer: Option<String>,
    subject: String,
    client_id: Option<String>,
}

impl Owner {
    pub(super) fn of(p: &Principal) -> Self {
        Owner {
            issuer: p.issuer.clone(),
            subject: p.subject.clone(),
            client_id: p.client_id.clone(),
        }
    }
}

/// One bound session.
pub(super) struct Session {
    /// The first characters of the id, for the audit log.
    pub(super) short: String,
    pub(super) owner: Owner,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    outstanding: VecDeque<RequestId>,
    tools: Option<Arc<ToolCatalog>>,
}

impl Session {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A server-to-client request was sent on one of this session's streams.
    pub(super) fn server_asked(&self, id: RequestId) {
        let mut s = self.state();
        if s.outstanding.len() == REMEMBERED {
            s.outstanding.pop_front();
        }
        s.outstanding.push_back(id);
    }

    /// Whether `id` answers an outstanding server-to-client request.
    pub(super) fn is_outstanding(&self, id: &RequestId) -> bool {
        self.state().outstanding.contains(id)
    }

    /// The client answered `id`.
    pub(super) fn answered(&self, id: &RequestId) {
        self.state().outstanding.retain(|i| i != id);
    }

    /// The tools the server last listed, for annotation-defined groups.
    pub(super) fn tools(&self) -> Option<Arc<ToolCatalog>> {
        self.state().tools.clone()
    }

    /// Learns the server's tool annotations from an unfiltered `tools/list` result.
    pub(super) fn learn_tools(&self, catalog: ToolCatalog) {
        self.state().tools = Some(Arc::new(catalog));
    }
}

/// The bounded table of bound sessions.
pub(super) struct Sessions {
    table: moka::sync::Cache<String, Arc<Session>>,
}

impl Sessions {
    pub(super) fn new(max: u64, idle: Duration) -> Self {
        Sessions {
            table: moka::sync::Cache::builder()
                .max_capacity(max)
                .time_to_idle(idle)
                .build(),
        }
    }

    /// The session `id`, if it is bound.
    pub(super) fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.table.get(id)
    }

    /// Binds a session id the inner service just issued to `owner`. An id already bound to
    /// someone else keeps its owner, and `None` says so.
    pub(super) fn bind(&self, id: &str, owner: Owner) -> Option<Arc<Session>> {
        let entry = self.table.get_with(id.to_owned(), || {
            Arc::new(Session {
                short: id.chars().take(8).collect(),
                owner: owner.clone(),
                state: Mutex::new(State::default()),
            })
        });
        (entry.owner == owner).then_some(entry)
    }

    /// Forgets a session the inner service ended.
    pub(super) fn remove(&self, id: &str) {
        self.table.invalidate(id);
    }
}
