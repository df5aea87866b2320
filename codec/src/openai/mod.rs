//! OpenAI Chat Completions, as far as the same-protocol path needs it.
//!
//! The pass-through path never re-serializes a body: `request` finds where the `model` value sits
//! so that it can be spliced in place, `error` renders OpenAI's error shape, and `models` renders
//! the model list.

mod error;
mod models;
mod request;

pub use error::{ErrorKind, error_body};
pub use models::{ModelEntry, models_body};
pub use request::{RequestError, RequestHead, scan_request, splice_model};
