//! The embedded default: what `busbar` serves with no config file.
//!
//! It always has the built-in `mock` model, so a newcomer with no provider keys can make a
//! request and see an answer, and it adds each known provider whose API key is in the
//! environment, with a few of its current models, each in its native protocol (Anthropic
//! Messages, Gemini generateContent, Cohere v2) or, for the OpenAI-compatible hosts, Chat
//! Completions.

/// How the default is named in messages.
pub const DEFAULT_SOURCE_NAME: &str = "<embedded default>";

struct Known {
    provider: &'static str,
    protocol: &'static str,
    env: &'static str,
    base_url: &'static str,
    /// name, context window, max output, input and output USD per million tokens
    models: &'static [(&'static str, u64, u64, f64, f64)],
}

const KNOWN: &[Known] = &[
    Known {
        provider: "openai",
        protocol: "openai",
        env: "OPENAI_API_KEY",
        base_url: "https://api.openai.com/v1",
        models: &[
            ("gpt-4o", 128_000, 16_384, 2.5, 10.0),
            ("gpt-4o-mini", 128_000, 16_384, 0.15, 0.6),
            ("gpt-4.1", 1_047_576, 32_768, 2.0, 8.0),
            ("gpt-4.1-mini", 1_047_576, 32_768, 0.4, 1.6),
            ("gpt-4.1-nano", 1_047_576, 32_768, 0.1, 0.4),
        ],
    },
    Known {
        provider: "anthropic",
        protocol: "anthropic",
        env: "ANTHROPIC_API_KEY",
        base_url: "https://api.anthropic.com/v1",
        models: &[
            ("claude-sonnet-4-5", 200_000, 64_000, 3.0, 15.0),
            ("claude-haiku-4-5", 200_000, 64_000, 1.0, 5.0),
        ],
    },
    Known {
        provider: "gemini",
        protocol: "gemini",
        env: "GEMINI_API_KEY",
        base_url: "https://generativelanguage.googleapis.com/v1beta",
        models: &[
            ("gemini-2.5-flash", 1_048_576, 65_536, 0.3, 2.5),
            ("gemini-2.5-pro", 1_048_576, 65_536, 1.25, 10.0),
        ],
    },
    Known {
        provider: "cohere",
        protocol: "cohere",
        env: "COHERE_API_KEY",
        base_url: "https://api.cohere.com/v2",
        models: &[("command-a-03-2025", 256_000, 8_000, 2.5, 10.0)],
    },
    Known {
        provider: "mistral",
        protocol: "openai",
        env: "MISTRAL_API_KEY",
        base_url: "https://api.mistral.ai/v1",
        models: &[("mistral-large-latest", 128_000, 32_768, 2.0, 6.0)],
    },
    Known {
        provider: "deepseek",
        protocol: "openai",
        env: "DEEPSEEK_API_KEY",
        base_url: "https://api.deepseek.com/v1",
        models: &[("deepseek-chat", 128_000, 8_192, 0.27, 1.1)],
    },
    Known {
        provider: "groq",
        protocol: "openai",
        env: "GROQ_API_KEY",
        base_url: "https://api.groq.com/openai/v1",
        models: &[("llama-3.3-70b-versatile", 131_072, 32_768, 0.59, 0.79)],
    },
];

/// The default config as TOML, for the environment `env` describes. It goes through the same
/// parser as a file, so it is validated the same way.
pub fn default_toml(env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut t = String::from(
        "listen = \"127.0.0.1:8080\"\nshards = 0\n\n\
         [providers.mock]\nprotocol = \"openai\"\nmock = { ttft_ms = 0, token_gap_ms = 0, tokens = 16 }\n\n\
         [models.mock]\nprovider = \"mock\"\ncontext_window = 1000000\nmax_output_tokens = 100000\n\n",
    );
    for k in KNOWN {
        if env(k.env).is_none_or(|v| v.is_empty()) {
            continue;
        }
        t.push_str(&format!(
            "[providers.{}]\nprotocol = \"{}\"\nbase_url = \"{}\"\napi_key_env = \"{}\"\n\n",
            k.provider, k.protocol, k.base_url, k.env
        ));
        for (name, ctx, max_out, inp, out) in k.models {
            t.push_str(&format!(
                "[models.\"{name}\"]\nprovider = \"{}\"\ncontext_window = {ctx}\nmax_output_tokens = {max_out}\n\
                 input_price = {inp:?}\noutput_price = {out:?}\n\n",
                k.provider
            ));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_keys_gives_just_the_mock() {
        let none = |_: &str| None;
        let c = crate::config::parse(&default_toml(&none), &none).unwrap();
        assert_eq!(
            c.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["mock"]
        );
        assert!(c.keys.is_empty() && c.listen.ip().is_loopback());
    }

    #[test]
    fn a_key_in_the_environment_adds_its_provider() {
        let env = |n: &str| (n == "OPENAI_API_KEY").then(|| "sk-x".to_string());
        let c = crate::config::parse(&default_toml(&env), &env).unwrap();
        let openai = c.providers.iter().find(|p| p.name == "openai").unwrap();
        assert_eq!(openai.api_key.as_deref(), Some("sk-x"));
        let m = c.models.iter().find(|m| m.name == "gpt-4o-mini").unwrap();
        assert_eq!(m.input_price, 0.15);
        assert!(c.providers.iter().all(|p| p.name != "anthropic"));
    }

    #[test]
    fn known_providers_speak_their_native_protocols() {
        let env = |n: &str| {
            matches!(n, "ANTHROPIC_API_KEY" | "GEMINI_API_KEY" | "COHERE_API_KEY")
                .then(|| "k".to_string())
        };
        let c = crate::config::parse(&default_toml(&env), &env).unwrap();
        let by = |n: &str| c.providers.iter().find(|p| p.name == n).unwrap();
        use crate::config::{Auth, Protocol};
        assert_eq!(
            (by("anthropic").protocol, &by("anthropic").auth),
            (Protocol::Anthropic, &Auth::XApiKey)
        );
        assert_eq!(
            (by("gemini").protocol, &by("gemini").auth),
            (Protocol::Gemini, &Auth::GoogApiKey)
        );
        assert_eq!(by("cohere").protocol, Protocol::Cohere);
    }
}
