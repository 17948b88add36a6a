//! The demo server's MCP handler: its own tools, resources and prompts, plus the conformance
//! fixtures from [`crate::fixtures`].
//!
//! One [`DemoServer`] serves one session (stdio has one; the HTTP transport makes one per
//! `initialize`), so the log level and the resource subscriptions it keeps are per session.

use std::{
    collections::HashSet,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU8, Ordering},
    },
};

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, tool::ToolCallContext, wrapper::Parameters},
    model::{
        CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
        CompletionInfo, GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation,
        ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
        PaginatedRequestParams, Prompt, PromptArgument, PromptMessage, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, Reference, Resource, ResourceContents, Role,
        ServerCapabilities, ServerConfig, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
    },
    schemars,
    service::RequestContext,
    tool, tool_router,
};
// Logging is deprecated by SEP-2577 (protocol 2026-07-28), but the 2025-11-25 protocol that
// clients negotiate today, and its conformance suite, still use it.
#[expect(deprecated, reason = "logging is still part of protocol 2025-11-25")]
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam, SetLevelRequestParams};
use serde::Deserialize;
use serde_json::Value;

use crate::fixtures;

/// URI of the demo's own text resource.
const README_URI: &str = "demo://readme";

/// Text of [`README_URI`].
const README_TEXT: &str = "# mcp-guard-demo\n\nA demo MCP server for testing mcp-guard. \
Its tools `echo` and `add` only read; `delete_file` and `deploy` are marked destructive but \
only pretend: they touch nothing.\n";

/// URI of the demo's own JSON resource.
const STATUS_URI: &str = "demo://status";

/// The MCP handler of one session.
#[derive(Debug)]
pub struct DemoServer {
    /// The demo's own tools, declared with rmcp's `#[tool]` macros below.
    own_tools: ToolRouter<Self>,
    /// Lowest severity that `notifications/message` may carry, as a [`severity`] rank.
    min_log_severity: AtomicU8,
    /// URIs the client subscribed to with `resources/subscribe`. The demo's resources never
    /// change, so no `notifications/resources/updated` is ever due; the set is only kept.
    subscriptions: Mutex<HashSet<String>>,
}

impl Default for DemoServer {
    fn default() -> Self {
        Self::new()
    }
}

/// Arguments of `echo`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    message: String,
}

/// Arguments of `add`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// The first addend.
    a: f64,
    /// The second addend.
    b: f64,
}

/// Arguments of `delete_file`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct DeleteFileArgs {
    /// The file to (pretend to) delete.
    path: String,
}

/// Arguments of `deploy`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct DeployArgs {
    /// The service to (pretend to) deploy.
    service: String,
    /// The target environment, e.g. `staging` or `production`.
    env: String,
}

// ===== the demo's own tools =====

#[tool_router(router = own_tool_router)]
impl DemoServer {
    /// Returns the `message` argument unchanged.
    #[tool(annotations(read_only_hint = true, destructive_hint = false))]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.message
    }

    /// Adds two numbers.
    #[tool(annotations(read_only_hint = true, destructive_hint = false))]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    /// Deletes a file. Demo only: it reports what it would delete and touches nothing on disk.
    #[tool(annotations(read_only_hint = false, destructive_hint = true))]
    async fn delete_file(&self, Parameters(args): Parameters<DeleteFileArgs>) -> String {
        format!("deleted `{}` (demo: nothing was touched)", args.path)
    }

    /// Deploys a service to an environment. Demo only: nothing is deployed.
    #[tool(annotations(read_only_hint = false, destructive_hint = true))]
    async fn deploy(&self, Parameters(args): Parameters<DeployArgs>) -> String {
        format!(
            "deployed `{}` to `{}` (demo: nothing was deployed)",
            args.service, args.env
        )
    }
}

// ===== impl DemoServer =====

impl DemoServer {
    /// A handler for one new session.
    pub fn new() -> Self {
        Self {
            own_tools: Self::own_tool_router(),
            min_log_severity: AtomicU8::new(info_severity()),
            subscriptions: Mutex::new(HashSet::new()),
        }
    }

    /// Sends `notifications/message` at `level` unless the client asked for a higher level.
    ///
    /// A failed send is ignored: a log line is not worth failing the request that logs it.
    #[expect(deprecated, reason = "logging is still part of protocol 2025-11-25")]
    pub(crate) async fn log(
        &self,
        context: &RequestContext<RoleServer>,
        level: LoggingLevel,
        data: Value,
    ) {
        if severity(level) < self.min_log_severity.load(Ordering::Relaxed) {
            return;
        }
        let message = LoggingMessageNotificationParam::new(level, data).with_logger("demo");
        if let Err(error) = context.peer.notify_logging_message(message).await {
            tracing::debug!(%error, "could not send a log notification");
        }
    }

    /// The subscription set; a panic while it was held cannot leave it inconsistent.
    fn subscriptions(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The demo's own resources.
    fn own_resources() -> Vec<Resource> {
        vec![
            Resource::new(README_URI, "readme")
                .with_description("What this demo server is")
                .with_mime_type("text/markdown"),
            Resource::new(STATUS_URI, "status")
                .with_description("A small JSON document")
                .with_mime_type("application/json"),
        ]
    }

    /// Reads one of the demo's own resources.
    fn read_own_resource(uri: &str) -> Option<ReadResourceResult> {
        let contents = match uri {
            README_URI => ResourceContents::text(README_TEXT, uri).with_mime_type("text/markdown"),
            STATUS_URI => ResourceContents::text(
                serde_json::json!({ "status": "ok", "server": env!("CARGO_PKG_NAME") }).to_string(),
                uri,
            )
            .with_mime_type("application/json"),
            _ => return None,
        };
        Some(ReadResourceResult::new(vec![contents]))
    }

    /// The demo's own prompts.
    fn own_prompts() -> Vec<Prompt> {
        vec![Prompt::new(
            "greeting",
            Some("Asks the model to greet someone by name"),
            Some(vec![
                PromptArgument::new("name")
                    .with_description("Who to greet")
                    .with_required(true),
            ]),
        )]
    }
}

/// Rank of a log level; a higher rank is more severe.
#[expect(deprecated, reason = "logging is still part of protocol 2025-11-25")]
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The rank of `info`, the level a session logs at until the client sets one.
#[expect(deprecated, reason = "logging is still part of protocol 2025-11-25")]
fn info_severity() -> u8 {
    severity(LoggingLevel::Info)
}

/// The string argument `name` of a prompt, which must be present.
pub(crate) fn required_argument<'a>(
    arguments: Option<&'a serde_json::Map<String, Value>>,
    name: &str,
) -> Result<&'a str, ErrorData> {
    arguments
        .and_then(|arguments| arguments.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorData::invalid_params(format!("missing argument `{name}`"), None))
}

/// Completion candidates that start with what the client typed so far.
fn complete_from(candidates: &[&str], typed: &str) -> Vec<String> {
    candidates
        .iter()
        .filter(|candidate| candidate.starts_with(typed))
        .map(|candidate| (*candidate).to_owned())
        .collect()
}

// ===== impl ServerHandler for DemoServer =====

impl ServerHandler for DemoServer {
    #[expect(deprecated, reason = "logging is still part of protocol 2025-11-25")]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_tools()
                .build(),
        )
        .with_server_info(Implementation::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "Demo server for mcp-guard. `echo` and `add` only read; `delete_file` and `deploy` \
             are destructive in name only. Tools named `test_*` are MCP conformance fixtures.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.own_tools.list_all();
        tools.extend(fixtures::tools());
        Ok(ListToolsResult::with_all_items(tools))
    }

    // rmcp's HTTP transport asks for a tool's schema to check SEP-2243 `Mcp-Param-*` headers.
    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.own_tools
            .get(name)
            .cloned()
            .or_else(|| fixtures::tools().into_iter().find(|tool| tool.name == name))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if fixtures::has_tool(&request.name) {
            let arguments = request.arguments.unwrap_or_default();
            return fixtures::call_tool(self, &request.name, &arguments, &context)
                .await
                .map(CallToolResponse::from);
        }
        self.own_tools
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let mut resources = Self::own_resources();
        resources.extend(fixtures::resources());
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            fixtures::resource_templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        Self::read_own_resource(&request.uri)
            .or_else(|| fixtures::read_resource(&request.uri))
            .map(ReadResourceResponse::from)
            .ok_or_else(|| {
                ErrorData::resource_not_found(format!("no resource `{}`", request.uri), None)
            })
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions().insert(request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions().remove(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let mut prompts = Self::own_prompts();
        prompts.extend(fixtures::prompts());
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let arguments = request.arguments.as_ref();
        let result = match request.name.as_str() {
            "greeting" => {
                let name = required_argument(arguments, "name")?;
                GetPromptResult::new(vec![PromptMessage::new_text(
                    Role::User,
                    format!("Please greet {name} warmly."),
                )])
                .with_description("A greeting")
            }
            name => fixtures::get_prompt(name, arguments).ok_or_else(|| {
                ErrorData::invalid_params(format!("no prompt `{}`", request.name), None)
            })??,
        };
        Ok(result.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let typed = request.argument.value.as_str();
        let candidates = match (&request.r#ref, request.argument.name.as_str()) {
            (Reference::Prompt(prompt), "name") if prompt.name == "greeting" => {
                &["Alice", "Bob", "Carol"]
            }
            (reference, argument) => fixtures::completion_candidates(reference, argument),
        };
        let values = complete_from(candidates, typed);
        let completion =
            CompletionInfo::new(values).map_err(|error| ErrorData::internal_error(error, None))?;
        Ok(CompleteResult::new(completion))
    }

    #[expect(deprecated, reason = "logging is still part of protocol 2025-11-25")]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.min_log_severity
            .store(severity(request.level), Ordering::Relaxed);
        Ok(())
    }
}
