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

pub use error::{ErrorKind, error_body};
pub use models::{ModelEntry, models_body};
pub use request::{parse_request, write_request};
pub use response::{parse_response, write_response};
pub use scan::{RequestError, RequestHead, scan_request, splice_model};
