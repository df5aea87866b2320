//! The six wire protocols busbar speaks on both sides.

/// A wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAiChat,
    /// OpenAI Responses (`POST /v1/responses`).
    OpenAiResponses,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
    /// Google Gemini (`:generateContent`, `:streamGenerateContent`).
    Gemini,
    /// Cohere v2 chat (`POST /v2/chat`).
    Cohere,
    /// AWS Bedrock Converse (`/model/{id}/converse`, `/converse-stream`).
    Bedrock,
}

impl Protocol {
    /// Every protocol, in the order of ARCHITECTURE.md's table.
    pub const ALL: [Protocol; 6] = [
        Protocol::OpenAiChat,
        Protocol::OpenAiResponses,
        Protocol::Anthropic,
        Protocol::Gemini,
        Protocol::Cohere,
        Protocol::Bedrock,
    ];

    /// The protocol's name in config files and loss reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAiChat => "openai",
            Protocol::OpenAiResponses => "responses",
            Protocol::Anthropic => "anthropic",
            Protocol::Gemini => "gemini",
            Protocol::Cohere => "cohere",
            Protocol::Bedrock => "bedrock",
        }
    }

    /// The protocol named `name` in a config file.
    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Protocol::ALL {
            assert_eq!(Protocol::from_name(p.as_str()), Some(p));
        }
        assert_eq!(Protocol::from_name("grpc"), None);
    }
}
