//! An rmcp server that uses every server feature the gateway must carry: prompts with argument
//! completion, resources and a resource template with subscriptions, and tools that sample,
//! elicit and announce resource updates. It can be capped at an older protocol revision.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, Reference, ServerCapabilities, ServerConfig,
    SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct FullServer {
    /// The revisions it accepts; the newest is what it negotiates with a newer client.
    pub versions: &'static [ProtocolVersion],
    /// What it was asked, in order: `subscribe:<uri>`, `unsubscribe:<uri>`,
    /// `complete:<prompt name or template>:<argument>`, `set_level:<level>`.
    pub record: Arc<Mutex<Vec<String>>>,
    subscribed: Arc<Mutex<BTreeSet<String>>>,
}

impl FullServer {
    pub fn new(versions: &'static [ProtocolVersion], record: Arc<Mutex<Vec<String>>>) -> Self {
        FullServer {
            versions,
            record,
            subscribed: Arc::default(),
        }
    }

    fn note(&self, what: String) {
        if let Ok(mut r) = self.record.lock() {
            r.push(what);
        }
    }

    async fn call(
        &self,
        name: &str,
        args: &Value,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<String, ErrorData> {
        match name {
            "add" => {
                Ok((args["a"].as_i64().unwrap_or(0) + args["b"].as_i64().unwrap_or(0)).to_string())
            }
            // Asks the client's model, through the gateway, inside this call.
            "sample" => {
                #[allow(deprecated)]
                let result = ctx
                    .peer
                    .create_message(typed(json!({
                        "messages": [{"role": "user", "content": {"type": "text", "text": "Say something"}}],
                        "maxTokens": 20
                    }))?)
                    .await
                    .map_err(|e| ErrorData::internal_error(format!("sampling failed: {e}"), None))?;
                let v = serde_json::to_value(&result).unwrap_or_default();
                Ok(v["content"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string())
            }
            // Asks the user, through the gateway, inside this call.
            "ask" => {
                let result = ctx
                    .peer
                    .create_elicitation(typed(json!({
                        "mode": "form",
                        "message": "Your name?",
                        "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
                    }))?)
                    .await
                    .map_err(|e| ErrorData::internal_error(format!("elicitation failed: {e}"), None))?;
                let v = serde_json::to_value(&result).unwrap_or_default();
                Ok(format!(
                    "hello {}",
                    v["content"]["name"].as_str().unwrap_or("nobody")
                ))
            }
            // Announces an update of every subscribed resource.
            "touch" => {
                let uris: Vec<String> = self
                    .subscribed
                    .lock()
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                for uri in &uris {
                    let _ = ctx
                        .peer
                        .notify_resource_updated(
                            rmcp::model::ResourceUpdatedNotificationParam::new(uri.clone()),
                        )
                        .await;
                }
                Ok(format!("touched {}", uris.len()))
            }
            _ => Err(ErrorData::invalid_params(format!("no tool {name}"), None)),
        }
    }
}

/// An rmcp type from its JSON form (the types are non-exhaustive and version-gated, the JSON
/// is what the specification shows).
fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ErrorData> {
    serde_json::from_value(v).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

const NAMES: [&str; 3] = ["Ada", "Alan", "Grace"];
const NOTE_IDS: [&str; 3] = ["1", "2", "10"];

impl ServerHandler for FullServer {
    fn get_info(&self) -> ServerConfig {
        let caps: ServerCapabilities = typed(json!({
            "tools": {}, "prompts": {}, "resources": {"subscribe": true}, "completions": {},
            "logging": {}
        }))
        .unwrap_or_default();
        ServerConfig::new(caps)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(self.versions)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let object = json!({"type": "object"});
        typed(json!({"tools": [
            {"name": "add", "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}},
            {"name": "sample", "inputSchema": object},
            {"name": "ask", "inputSchema": object},
            {"name": "touch", "inputSchema": object},
        ]}))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        let text = self.call(&request.name, &args, &context).await?;
        let result: rmcp::model::CallToolResult =
            typed(json!({"content": [{"type": "text", "text": text}]}))?;
        Ok(result.into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        typed(
            json!({"prompts": [{"name": "greet", "arguments": [{"name": "name", "required": true}]}]}),
        )
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != "greet" {
            return Err(ErrorData::invalid_params(
                format!("no prompt {}", request.name),
                None,
            ));
        }
        let name = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("stranger")
            .to_string();
        let result: rmcp::model::GetPromptResult = typed(json!({"messages": [
            {"role": "user", "content": {"type": "text", "text": format!("Hello, {name}!")}}
        ]}))?;
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        typed(json!({"resources": [
            {"uri": "note://1", "name": "note 1"},
            {"uri": "note://2", "name": "note 2"},
        ]}))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        typed(json!({"resourceTemplates": [{"uriTemplate": "note://{id}", "name": "note"}]}))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let Some(id) = request.uri.strip_prefix("note://") else {
            return Err(ErrorData::resource_not_found(
                format!("no resource {}", request.uri),
                None,
            ));
        };
        let result: rmcp::model::ReadResourceResult = typed(json!({"contents": [
            {"uri": request.uri, "text": format!("note {id}")}
        ]}))?;
        Ok(result.into())
    }

    /// Completes the prompt's `name` and the template's `id`; anything else is an error, so a
    /// reference that still carries the gateway's prefix fails the test.
    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let (reference, candidates): (String, &[&str]) = match &request.r#ref {
            Reference::Prompt(p) if p.name == "greet" && request.argument.name == "name" => {
                (p.name.clone(), &NAMES)
            }
            Reference::Resource(r) if r.uri == "note://{id}" && request.argument.name == "id" => {
                (r.uri.clone(), &NOTE_IDS)
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("cannot complete {other:?}"),
                    None,
                ));
            }
        };
        self.note(format!("complete:{reference}:{}", request.argument.name));
        let values: Vec<&str> = candidates
            .iter()
            .copied()
            .filter(|c| c.starts_with(&request.argument.value))
            .collect();
        typed(json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}))
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.note(format!("subscribe:{}", request.uri));
        if let Ok(mut s) = self.subscribed.lock() {
            s.insert(request.uri);
        }
        Ok(())
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let level = serde_json::to_value(request.level).unwrap_or_default();
        self.note(format!("set_level:{}", level.as_str().unwrap_or_default()));
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.note(format!("unsubscribe:{}", request.uri));
        if let Ok(mut s) = self.subscribed.lock() {
            s.remove(&request.uri);
        }
        Ok(())
    }
}
