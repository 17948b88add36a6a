//! What an MCP message asks to do, and the permission that guards it (DESIGN.md section 4).

use std::sync::Arc;

use serde_json::Value;

/// The permission checked for one operation: `domain:action:target`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Permission {
    /// `tools`, `resources`, `prompts` or `system`.
    pub domain: &'static str,
    /// `execute`, `read` or `call`.
    pub action: &'static str,
    /// The tool or prompt name, the resource URI, or the method for `system`. Shared with the
    /// operation it came from, so deriving a permission does not copy it.
    pub target: Arc<str>,
}

impl Permission {
    fn shared(domain: &'static str, action: &'static str, target: &Arc<str>) -> Self {
        Permission {
            domain,
            action,
            target: target.clone(),
        }
    }

    /// `tools:execute:<name>`.
    pub fn tool(name: &str) -> Self {
        Permission {
            domain: "tools",
            action: "execute",
            target: name.into(),
        }
    }
    /// `resources:read:<uri>`.
    pub fn resource(uri: &str) -> Self {
        Permission {
            domain: "resources",
            action: "read",
            target: uri.into(),
        }
    }
    /// `prompts:read:<name>`.
    pub fn prompt(name: &str) -> Self {
        Permission {
            domain: "prompts",
            action: "read",
            target: name.into(),
        }
    }
    /// `system:call:<method>`.
    pub fn system(method: &str) -> Self {
        Permission {
            domain: "system",
            action: "call",
            target: method.into(),
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Piece by piece: `write!` with arguments cost several times as much, and every decision's
        // audit line shows a permission (callgrind).
        f.write_str(self.domain)?;
        f.write_str(":")?;
        f.write_str(self.action)?;
        f.write_str(":")?;
        f.write_str(&self.target)
    }
}

/// The kinds of list request whose results are filtered per item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `tools/list`: items are tools, checked as `tools:execute:<name>`.
    Tools,
    /// `resources/list`: items are resources, checked as `resources:read:<uri>`.
    Resources,
    /// `resources/templates/list`: checked as `resources:read:<uriTemplate>`, raw.
    ResourceTemplates,
    /// `prompts/list`: checked as `prompts:read:<name>`.
    Prompts,
}

impl ListKind {
    /// The JSON-RPC method.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
            ListKind::Prompts => "prompts/list",
        }
    }
    /// The key of the item array in the result.
    pub fn result_key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
            ListKind::Prompts => "prompts",
        }
    }
    /// The key naming each item.
    pub fn item_key(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
        }
    }
    /// The permission that would let the principal use an item named `id`.
    pub fn item_permission(self, id: &str) -> Permission {
        match self {
            ListKind::Tools => Permission::tool(id),
            ListKind::Resources | ListKind::ResourceTemplates => Permission::resource(id),
            ListKind::Prompts => Permission::prompt(id),
        }
    }
}

/// What the target of a `completion/complete` request refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompletionRef {
    /// `ref/prompt` with a name.
    Prompt(Arc<str>),
    /// `ref/resource` with a URI or raw URI template.
    Resource(Arc<str>),
}

/// The task-related methods that need the task to belong to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskMethod {
    /// `tasks/get`.
    Get,
    /// `tasks/result`.
    Result,
    /// `tasks/cancel`.
    Cancel,
}

/// What one classified MCP message asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    /// `tools/call`.
    CallTool {
        /// `params.name`.
        name: Arc<str>,
        /// `params.arguments`, an object when present (visible to ABAC).
        arguments: Option<Value>,
    },
    /// `resources/read`, `resources/subscribe`, `resources/unsubscribe`.
    ReadResource {
        /// The method, one of the three.
        method: &'static str,
        /// `params.uri`.
        uri: Arc<str>,
    },
    /// `prompts/get`.
    GetPrompt {
        /// `params.name`.
        name: Arc<str>,
        /// `params.arguments`, when present.
        arguments: Option<Value>,
    },
    /// `completion/complete`: guarded by the permission of its reference.
    Complete(CompletionRef),
    /// A list request: any authenticated principal, items filtered.
    List(ListKind),
    /// `initialize`, `ping`, `server/discover`: authentication only.
    Lifecycle(&'static str),
    /// A `notifications/*` message from the client: authentication only.
    ClientNotification(String),
    /// `tasks/get`, `tasks/result`, `tasks/cancel`: the task must belong to the principal.
    Task {
        /// Which of the three.
        method: TaskMethod,
        /// `params.taskId`.
        task_id: Arc<str>,
    },
    /// `tasks/list`: filtered to the principal's tasks by the session layer.
    ListTasks,
    /// A JSON-RPC response from the client: only for an outstanding server-to-client request.
    ClientResponse,
    /// Any other method `m`: `system:call:<m>`.
    System(Arc<str>),
}

impl Operation {
    /// The permission this operation needs, if it needs one beyond authentication.
    pub fn permission(&self) -> Option<Permission> {
        match self {
            Operation::CallTool { name, .. } => Some(Permission::shared("tools", "execute", name)),
            Operation::ReadResource { uri, .. } => {
                Some(Permission::shared("resources", "read", uri))
            }
            Operation::GetPrompt { name, .. } => Some(Permission::shared("prompts", "read", name)),
            Operation::Complete(CompletionRef::Prompt(name)) => {
                Some(Permission::shared("prompts", "read", name))
            }
            Operation::Complete(CompletionRef::Resource(uri)) => {
                Some(Permission::shared("resources", "read", uri))
            }
            Operation::System(m) => Some(Permission::shared("system", "call", m)),
            Operation::List(_)
            | Operation::Lifecycle(_)
            | Operation::ClientNotification(_)
            | Operation::Task { .. }
            | Operation::ListTasks
            | Operation::ClientResponse => None,
        }
    }

    /// Tool or prompt arguments, when the message carries them.
    pub fn arguments(&self) -> Option<&Value> {
        match self {
            Operation::CallTool { arguments, .. } | Operation::GetPrompt { arguments, .. } => {
                arguments.as_ref()
            }
            _ => None,
        }
    }
}
