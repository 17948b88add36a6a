//! The fixtures that the MCP conformance suite's server scenarios call, under the names and with
//! the results the suite expects (`@modelcontextprotocol/conformance` 0.1.16, run by
//! `interop/conformance.sh`). Each scenario's description in the suite says what it calls.
//!
//! Sampling and elicitation requests are sent from inside the tool call, so rmcp 3.11 tags them
//! with the originating request (SEP-2260) and delivers them on that POST's SSE stream, not on the
//! standalone GET stream.

use std::time::Duration;

use rmcp::{
    ErrorData, RoleServer,
    model::{
        CallToolResult, ClientResult, ContentBlock, ElicitRequest, ElicitRequestParams,
        ElicitationSchema, GetPromptResult, JsonObject, ProgressNotificationParam, Prompt,
        PromptArgument, PromptMessage, ReadResourceResult, Reference, Resource, ResourceContents,
        ResourceTemplate, Role, ServerRequest, Tool,
    },
    service::RequestContext,
};
// Logging and sampling are deprecated by SEP-2577 (protocol 2026-07-28), but the 2025-11-25
// protocol that clients negotiate today, and its conformance suite, still use them.
#[expect(
    deprecated,
    reason = "logging and sampling are still part of protocol 2025-11-25"
)]
use rmcp::model::{CreateMessageRequestParams, LoggingLevel, SamplingMessage};
use serde_json::{Value, json};

use crate::server::{DemoServer, required_argument};

/// A 1x1 PNG, base64: the image the image fixtures return.
const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mOQ7yr4DwAD/gIZzFqJ9wAAAABJRU5ErkJggg==";

/// One millisecond of 8 kHz 8-bit mono silence as a WAV file, base64.
const WAV_BASE64: &str = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

/// The pause between the notifications of the logging and progress fixtures; the suite asks for
/// about 50 ms so that a client sees them arrive one by one.
const STEP: Duration = Duration::from_millis(50);

/// `(name, description)` of each fixture tool that takes no arguments.
const NO_ARGUMENT_TOOLS: &[(&str, &str)] = &[
    ("test_simple_text", "Returns one text block"),
    ("test_image_content", "Returns one PNG image block"),
    ("test_audio_content", "Returns one WAV audio block"),
    (
        "test_embedded_resource",
        "Returns an embedded text resource",
    ),
    (
        "test_multiple_content_types",
        "Returns text, an image and an embedded resource",
    ),
    (
        "test_tool_with_logging",
        "Sends three info log notifications while it runs",
    ),
    (
        "test_error_handling",
        "Always fails with a tool error (isError: true)",
    ),
    (
        "test_tool_with_progress",
        "Reports progress 0, 50 and 100 of 100",
    ),
    (
        "test_elicitation_sep1034_defaults",
        "Elicits a form whose fields all have defaults",
    ),
    (
        "test_elicitation_sep1330_enums",
        "Elicits a form with every kind of enum field",
    ),
    (
        "test_reconnection",
        "Answers after a short pause (SSE polling scenario)",
    ),
];

/// A JSON object literal as the map rmcp's model types take.
fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        // Only ever called with object literals from this file.
        _ => JsonObject::new(),
    }
}

/// The input schema of a tool that takes one required string argument.
fn one_string_schema(name: &str, description: &str) -> JsonObject {
    object(json!({
        "type": "object",
        "properties": { name: { "type": "string", "description": description } },
        "required": [name],
    }))
}

/// The fixture tools, in the order `tools/list` shows them.
pub(crate) fn tools() -> Vec<Tool> {
    let empty = object(json!({ "type": "object", "properties": {} }));
    let mut tools: Vec<Tool> = NO_ARGUMENT_TOOLS
        .iter()
        .map(|(name, description)| Tool::new(*name, *description, empty.clone()))
        .collect();
    tools.push(Tool::new(
        "test_sampling",
        "Asks the client's LLM to answer `prompt` (sampling/createMessage)",
        one_string_schema("prompt", "The prompt to send to the LLM"),
    ));
    tools.push(Tool::new(
        "test_elicitation",
        "Asks the user for a username and an email (elicitation/create)",
        one_string_schema("message", "The message to show the user"),
    ));
    // SEP-1613: `$schema`, `$defs` and `additionalProperties` must reach the client unchanged.
    tools.push(Tool::new(
        "json_schema_2020_12_tool",
        "Tool with JSON Schema 2020-12 features",
        object(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {
                "address": {
                    "type": "object",
                    "properties": {
                        "street": { "type": "string" },
                        "city": { "type": "string" },
                    },
                },
            },
            "properties": {
                "name": { "type": "string" },
                "address": { "$ref": "#/$defs/address" },
            },
            "additionalProperties": false,
        })),
    ));
    tools
}

/// Whether `name` is a fixture tool.
pub(crate) fn has_tool(name: &str) -> bool {
    tools().iter().any(|tool| tool.name == name)
}

/// A successful result with one text block.
fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// A tool error (`isError: true`) with one text block.
fn error_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// The string argument `name`, or a tool error saying it is missing.
fn string_argument<'a>(arguments: &'a JsonObject, name: &str) -> Result<&'a str, CallToolResult> {
    arguments
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| error_result(format!("missing string argument `{name}`")))
}

/// Runs the fixture tool `name`; the caller checked [`has_tool`].
pub(crate) async fn call_tool(
    server: &DemoServer,
    name: &str,
    arguments: &JsonObject,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResult, ErrorData> {
    let result = match name {
        "test_simple_text" => text_result("This is a simple text response for testing."),
        "test_image_content" => {
            CallToolResult::success(vec![ContentBlock::image(PNG_BASE64, "image/png")])
        }
        "test_audio_content" => {
            CallToolResult::success(vec![ContentBlock::audio(WAV_BASE64, "audio/wav")])
        }
        "test_embedded_resource" => {
            CallToolResult::success(vec![ContentBlock::resource(ResourceContents::text(
                "This is an embedded resource content.",
                "test://embedded-resource",
            ))])
        }
        "test_multiple_content_types" => CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG_BASE64, "image/png"),
            ContentBlock::resource(
                ResourceContents::text(
                    json!({ "test": "data", "value": 123 }).to_string(),
                    "test://mixed-content-resource",
                )
                .with_mime_type("application/json"),
            ),
        ]),
        "test_tool_with_logging" => {
            with_logging(server, context).await;
            text_result("Logging test completed")
        }
        "test_error_handling" => {
            error_result("This tool intentionally returns an error for testing")
        }
        "test_tool_with_progress" => {
            with_progress(context).await;
            text_result("Progress test completed")
        }
        "test_sampling" => match string_argument(arguments, "prompt") {
            Ok(prompt) => sampling(prompt, context).await,
            Err(missing) => missing,
        },
        "test_elicitation" => match string_argument(arguments, "message") {
            Ok(message) => elicitation(message, user_info_schema(), context).await,
            Err(missing) => missing,
        },
        "test_elicitation_sep1034_defaults" => {
            elicitation(
                "Please check these values; each has a default",
                defaults_schema(),
                context,
            )
            .await
        }
        "test_elicitation_sep1330_enums" => {
            elicitation("Please pick some options", enums_schema(), context).await
        }
        "json_schema_2020_12_tool" => {
            let name = arguments
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("world");
            text_result(format!("Hello, {name}!"))
        }
        "test_reconnection" => {
            // rmcp gives a handler no way to close its POST stream early, so this only answers
            // late; the suite then reports the answer as arriving on the POST stream (INFO).
            tokio::time::sleep(2 * STEP).await;
            text_result("Reconnection test completed")
        }
        other => {
            return Err(ErrorData::invalid_params(
                format!("no fixture tool `{other}`"),
                None,
            ));
        }
    };
    Ok(result)
}

/// `test_tool_with_logging`: three info messages, [`STEP`] apart.
#[expect(
    deprecated,
    reason = "logging is deprecated by SEP-2577; the suite still tests it"
)]
async fn with_logging(server: &DemoServer, context: &RequestContext<RoleServer>) {
    let messages = [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ];
    for (index, message) in messages.into_iter().enumerate() {
        if index > 0 {
            tokio::time::sleep(STEP).await;
        }
        server
            .log(context, LoggingLevel::Info, json!(message))
            .await;
    }
}

/// `test_tool_with_progress`: progress 0, 50 and 100 of 100, [`STEP`] apart, if the client sent a
/// progress token.
async fn with_progress(context: &RequestContext<RoleServer>) {
    let token = context.meta.get_progress_token();
    for (index, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if index > 0 {
            tokio::time::sleep(STEP).await;
        }
        let Some(token) = token.clone() else {
            continue;
        };
        let notification = ProgressNotificationParam::new(token, progress).with_total(100.0);
        if let Err(error) = context.peer.notify_progress(notification).await {
            tracing::debug!(%error, "could not send a progress notification");
        }
    }
}

/// `test_sampling`: asks the client's model to answer `prompt` and returns its text.
#[expect(
    deprecated,
    reason = "sampling is deprecated by SEP-2577; the suite still tests it"
)]
async fn sampling(prompt: &str, context: &RequestContext<RoleServer>) -> CallToolResult {
    let request = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
    match context.peer.create_message(request).await {
        Ok(response) => {
            let text = response
                .message
                .content
                .iter()
                .filter_map(|block| block.as_text())
                .map(|block| block.text.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            text_result(format!("LLM response: {text}"))
        }
        Err(error) => error_result(format!("sampling failed: {error}")),
    }
}

/// Sends `elicitation/create` with a form and reports the user's answer.
///
/// It goes through `Peer::send_request` rather than `create_elicitation`, which needs rmcp's
/// `elicitation` feature and its `url` dependency for nothing this demo uses.
async fn elicitation(
    message: &str,
    schema: Result<ElicitationSchema, serde_json::Error>,
    context: &RequestContext<RoleServer>,
) -> CallToolResult {
    let schema = match schema {
        Ok(schema) => schema,
        Err(error) => return error_result(format!("bad elicitation schema: {error}")),
    };
    let request = ServerRequest::ElicitRequest(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: message.to_owned(),
            requested_schema: schema,
        },
    ));
    match context.peer.send_request(request).await {
        Ok(ClientResult::ElicitResult(result)) => {
            let action = serde_json::to_value(&result.action).unwrap_or(Value::Null);
            let content = result.content.unwrap_or(Value::Null);
            text_result(format!(
                "Elicitation completed: action={action}, content={content}"
            ))
        }
        Ok(_) => error_result("elicitation failed: the client sent an unexpected result"),
        Err(error) => error_result(format!("elicitation failed: {error}")),
    }
}

/// The form of `test_elicitation`.
fn user_info_schema() -> Result<ElicitationSchema, serde_json::Error> {
    serde_json::from_value(json!({
        "type": "object",
        "properties": {
            "username": { "type": "string", "description": "User's response" },
            "email": { "type": "string", "description": "User's email address" },
        },
        "required": ["username", "email"],
    }))
}

/// The form of `test_elicitation_sep1034_defaults`: a default for each primitive type.
fn defaults_schema() -> Result<ElicitationSchema, serde_json::Error> {
    serde_json::from_value(json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "Name", "default": "John Doe" },
            "age": { "type": "integer", "description": "Age", "default": 30 },
            "score": { "type": "number", "description": "Score", "default": 95.5 },
            "status": {
                "type": "string",
                "description": "Status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": { "type": "boolean", "description": "Verified", "default": true },
        },
    }))
}

/// The form of `test_elicitation_sep1330_enums`: the five enum shapes of SEP-1330.
fn enums_schema() -> Result<ElicitationSchema, serde_json::Error> {
    serde_json::from_value(json!({
        "type": "object",
        "properties": {
            "untitledSingle": { "type": "string", "enum": ["option1", "option2", "option3"] },
            "titledSingle": {
                "type": "string",
                "oneOf": [
                    { "const": "value1", "title": "First Option" },
                    { "const": "value2", "title": "Second Option" },
                    { "const": "value3", "title": "Third Option" },
                ],
            },
            "legacyEnum": {
                "type": "string",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] },
            },
            "titledMulti": {
                "type": "array",
                "items": {
                    "anyOf": [
                        { "const": "value1", "title": "First Choice" },
                        { "const": "value2", "title": "Second Choice" },
                        { "const": "value3", "title": "Third Choice" },
                    ],
                },
            },
        },
    }))
}

/// The fixture resources (not the template).
pub(crate) fn resources() -> Vec<Resource> {
    vec![
        Resource::new("test://static-text", "static-text")
            .with_description("A static text resource")
            .with_mime_type("text/plain"),
        Resource::new("test://static-binary", "static-binary")
            .with_description("A static binary resource (a PNG)")
            .with_mime_type("image/png"),
        Resource::new("test://watched-resource", "watched-resource")
            .with_description("A resource to subscribe to")
            .with_mime_type("text/plain"),
    ]
}

/// The fixture resource templates.
pub(crate) fn resource_templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("test://template/{id}/data", "template-data")
            .with_description("JSON data for the given id")
            .with_mime_type("application/json"),
    ]
}

/// Reads a fixture resource, or `None` if `uri` is not one.
pub(crate) fn read_resource(uri: &str) -> Option<ReadResourceResult> {
    let contents = match uri {
        "test://static-text" => {
            ResourceContents::text("This is the content of the static text resource.", uri)
        }
        "test://static-binary" => {
            ResourceContents::blob(PNG_BASE64, uri).with_mime_type("image/png")
        }
        "test://watched-resource" => ResourceContents::text("Watched resource content.", uri),
        _ => {
            let id = uri
                .strip_prefix("test://template/")?
                .strip_suffix("/data")
                .filter(|id| !id.is_empty() && !id.contains('/'))?;
            let data =
                json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
            ResourceContents::text(data.to_string(), uri).with_mime_type("application/json")
        }
    };
    Some(ReadResourceResult::new(vec![contents]))
}

/// The fixture prompts.
pub(crate) fn prompts() -> Vec<Prompt> {
    let required = |name: &str, description: &str| {
        PromptArgument::new(name)
            .with_description(description)
            .with_required(true)
    };
    vec![
        Prompt::new(
            "test_simple_prompt",
            Some("A prompt without arguments"),
            None,
        ),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("A prompt that repeats its two arguments"),
            Some(vec![
                required("arg1", "First test argument"),
                required("arg2", "Second test argument"),
            ]),
        ),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("A prompt that embeds the resource at `resourceUri`"),
            Some(vec![required(
                "resourceUri",
                "URI of the resource to embed",
            )]),
        ),
        Prompt::new(
            "test_prompt_with_image",
            Some("A prompt with an image"),
            None,
        ),
    ]
}

/// Gets a fixture prompt: `None` if `name` is not one, an error if an argument is missing.
pub(crate) fn get_prompt(
    name: &str,
    arguments: Option<&JsonObject>,
) -> Option<Result<GetPromptResult, ErrorData>> {
    let argument = |key: &str| required_argument(arguments, key);
    let messages = match name {
        "test_simple_prompt" => Ok(vec![PromptMessage::new_text(
            Role::User,
            "This is a simple prompt for testing.",
        )]),
        "test_prompt_with_arguments" => argument("arg1").and_then(|arg1| {
            let arg2 = argument("arg2")?;
            Ok(vec![PromptMessage::new_text(
                Role::User,
                format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"),
            )])
        }),
        "test_prompt_with_embedded_resource" => argument("resourceUri").map(|uri| {
            vec![
                PromptMessage::new(
                    Role::User,
                    ContentBlock::resource(ResourceContents::text(
                        "Embedded resource content for testing.",
                        uri,
                    )),
                ),
                PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
            ]
        }),
        "test_prompt_with_image" => Ok(vec![
            PromptMessage::new(Role::User, ContentBlock::image(PNG_BASE64, "image/png")),
            PromptMessage::new_text(Role::User, "Please analyze the image above."),
        ]),
        _ => return None,
    };
    Some(messages.map(GetPromptResult::new))
}

/// Completion candidates for the fixture prompt and template arguments; none for anything else.
pub(crate) fn completion_candidates(
    reference: &Reference,
    argument: &str,
) -> &'static [&'static str] {
    match (reference, argument) {
        (Reference::Prompt(prompt), "arg1" | "arg2")
            if prompt.name == "test_prompt_with_arguments" =>
        {
            &["test", "testing", "tested", "paris", "park"]
        }
        (Reference::Resource(template), "id") if template.uri == "test://template/{id}/data" => {
            &["1", "2", "3", "123"]
        }
        _ => &[],
    }
}
