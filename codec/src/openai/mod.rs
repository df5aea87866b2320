//! OpenAI Chat Completions, as far as the same-protocol path needs it.
//!
//! The pass-through path never re-serializes a body: `scan` finds where the `model` value sits
//! so that it can be spliced in place, `error` renders OpenAI's error shape, and `models` renders
//! the model list. `request` and `response` map bodies to and from the IR for translation.

mod error;
mod models;
mod request;
mod response;
mod scan;
pub mod stream;

pub use error::{ErrorKind, error_body};
pub use models::{ModelEntry, list_body, models_body};
pub(crate) use request::{data_url, split_data_url};
pub use request::{parse_request, write_request};
pub use response::{parse_response, write_response};
pub use scan::{RequestError, RequestHead, ask_for_usage, scan_request, splice_model};

use crate::ir::LossReport;
use serde_json::{Value, json};

/// An IR tool call as an OpenAI `tool_calls[]` entry (requests and responses alike): the
/// arguments are the JSON text of `input`, or the raw text when the provider sent invalid JSON.
fn tool_call_json(
    id: &str,
    name: &str,
    input: &Value,
    thought_signature: &Option<String>,
    path: &str,
    loss: &mut LossReport,
) -> Value {
    if thought_signature.is_some() {
        loss.drop_field(format!("{path}.thought_signature"));
    }
    let arguments = match input {
        Value::String(s) if serde_json::from_str::<Value>(s).is_err() => s.clone(),
        v => v.to_string(),
    };
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
}
