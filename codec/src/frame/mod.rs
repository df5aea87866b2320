//! Stream framers: the byte-level shapes streamed responses come in, separate from what the
//! events mean (the protocol mappings). Each decoder is an incremental state machine: bytes in,
//! whole events out, in any cut of the input, in memory bounded by the largest single event.
//!
//! ```text
//!   sse.rs          text/event-stream (OpenAI, Responses, Anthropic, Cohere, Gemini alt=sse)
//!   eventstream.rs  application/vnd.amazon.eventstream (Bedrock converse-stream), CRC-checked
//!   jsonarray.rs    Gemini's streamed JSON array (streamGenerateContent without alt=sse)
//! ```

pub mod eventstream;
pub mod jsonarray;
pub mod sse;

/// Why a stream could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// One event is larger than the framer's limit.
    #[error("a stream event is larger than {0} bytes")]
    TooLarge(usize),
    /// The bytes are not this framing.
    #[error("malformed stream: {0}")]
    Malformed(String),
    /// A checksum did not match.
    #[error("checksum mismatch in the {0}")]
    Checksum(&'static str),
}
