//! What a provider's whole answer says it used, read without building the answer: the billed
//! input tokens (cache reads and writes included, as every provider bills them) and the output
//! tokens (reasoning included). For governance on a relayed answer, where nothing else of the
//! body is needed; everything but the usage object is skipped by the parser, not allocated.
//!
//! Agrees with [`crate::translate::parse_response`]'s `usage` on every response fixture (see
//! the tests): billed input = `input + cache_read + cache_write`, output = `output`.

use crate::Protocol;
use serde::Deserialize;

/// Tokens a provider bills for one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Billed {
    /// Input tokens, cached ones included.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
}

#[derive(Deserialize)]
struct OpenAi {
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct Responses {
    usage: Option<ResponsesUsage>,
}

#[derive(Deserialize)]
struct ResponsesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

#[derive(Deserialize)]
struct Anthropic {
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Gemini {
    #[serde(rename = "usageMetadata", alias = "usage_metadata")]
    usage: Option<GeminiUsage>,
}

#[derive(Deserialize)]
struct GeminiUsage {
    #[serde(default, rename = "promptTokenCount", alias = "prompt_token_count")]
    prompt: u64,
    #[serde(
        default,
        rename = "candidatesTokenCount",
        alias = "candidates_token_count"
    )]
    candidates: u64,
    #[serde(default, rename = "thoughtsTokenCount", alias = "thoughts_token_count")]
    thoughts: u64,
}

#[derive(Deserialize)]
struct Bedrock {
    usage: Option<BedrockUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BedrockUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
}

/// The tokens `body` (a whole answer in `protocol`) says were used; `None` when it does not
/// say, or cannot be read this way (Cohere: use `parse_response`, whose billed units this does
/// not re-derive).
pub fn billed(protocol: Protocol, body: &[u8]) -> Option<Billed> {
    match protocol {
        Protocol::OpenAiChat => {
            let u = serde_json::from_slice::<OpenAi>(body).ok()?.usage?;
            Some(Billed {
                input: u.prompt_tokens,
                output: u.completion_tokens,
            })
        }
        Protocol::OpenAiResponses => {
            let u = serde_json::from_slice::<Responses>(body).ok()?.usage?;
            Some(Billed {
                input: u.input_tokens,
                output: u.output_tokens,
            })
        }
        Protocol::Anthropic => {
            let u = serde_json::from_slice::<Anthropic>(body).ok()?.usage?;
            Some(Billed {
                input: u.input_tokens
                    + u.cache_read_input_tokens.unwrap_or(0)
                    + u.cache_creation_input_tokens.unwrap_or(0),
                output: u.output_tokens,
            })
        }
        Protocol::Gemini => {
            let u = serde_json::from_slice::<Gemini>(body).ok()?.usage?;
            Some(Billed {
                input: u.prompt,
                output: u.candidates + u.thoughts,
            })
        }
        Protocol::Bedrock => {
            let u = serde_json::from_slice::<Bedrock>(body).ok()?.usage?;
            Some(Billed {
                input: u.input_tokens + u.cache_read_input_tokens + u.cache_write_input_tokens,
                output: u.output_tokens,
            })
        }
        Protocol::Cohere => {
            let r = crate::translate::parse_response(protocol, body).ok()?;
            let u = r.usage;
            Some(Billed {
                input: u.input + u.cache_read + u.cache_write,
                output: u.output,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On every response fixture, the quick read agrees with the full parse.
    #[test]
    fn agrees_with_the_full_parse_on_every_fixture() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut checked = 0;
        for (name, p) in [
            ("openai", Protocol::OpenAiChat),
            ("responses", Protocol::OpenAiResponses),
            ("anthropic", Protocol::Anthropic),
            ("gemini", Protocol::Gemini),
            ("cohere", Protocol::Cohere),
            ("bedrock", Protocol::Bedrock),
        ] {
            for e in std::fs::read_dir(dir.join(name)).unwrap() {
                let path = e.unwrap().path();
                let file = path.file_name().unwrap().to_string_lossy().to_string();
                if !(file.starts_with("response") && file.ends_with(".json")) {
                    continue;
                }
                let body = std::fs::read(&path).unwrap();
                let Ok(full) = crate::translate::parse_response(p, &body) else {
                    continue;
                };
                let u = full.usage;
                let want = Billed {
                    input: u.input + u.cache_read + u.cache_write,
                    output: u.output,
                };
                let got = billed(p, &body).unwrap_or_default();
                assert_eq!(got, want, "{name}/{file}");
                checked += 1;
            }
        }
        assert!(checked >= 15, "only {checked} fixtures");
        // An answer without usage says nothing; garbage is not a panic.
        assert_eq!(billed(Protocol::OpenAiChat, br#"{"choices":[]}"#), None);
        assert_eq!(billed(Protocol::Gemini, b"\xff{"), None);
    }
}
