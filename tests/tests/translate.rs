//! Cross-protocol requests through the real binary against scripted providers: the request
//! arrives in the provider's protocol with its own auth carrier, the answer comes back in the
//! caller's, losses are named in `x-busbar-dropped` (or refused under `strict`), and provider
//! errors keep their status but take the caller's error shape. Also: every ingress route's
//! auth carrier and error shape, and the model lists in OpenAI, Anthropic and Gemini shapes.

use busbar_tests::{Action, Busbar, Client, Scripted, json_response};
use serde_json::{Value, json};

const PROVIDER_KEY: &str = "sk-provider-secret";
const CLIENT_KEY: &str = "bb-client-key";

fn start(upstream: &str) -> Busbar {
    let config = format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[providers.claude]
protocol = "anthropic"
base_url = "http://{upstream}/v1"
api_key_env = "TR_PROVIDER_KEY"
[providers.oai]
protocol = "openai"
base_url = "http://{upstream}/v1"
api_key_env = "TR_PROVIDER_KEY"
[models.sonnet]
provider = "claude"
upstream = "claude-sonnet-4-5"
max_output_tokens = 2048
context_window = 200000
[models.sonnet-strict]
provider = "claude"
upstream = "claude-sonnet-4-5"
strict = true
[models.gpt]
provider = "oai"
upstream = "gpt-4o"
[[keys]]
name = "t"
key_env = "TR_CLIENT_KEY"
"#
    );
    Busbar::start(
        &config,
        "epoll",
        &[
            ("TR_PROVIDER_KEY", PROVIDER_KEY),
            ("TR_CLIENT_KEY", CLIENT_KEY),
        ],
    )
}

fn bearer() -> (&'static str, String) {
    ("Authorization", format!("Bearer {CLIENT_KEY}"))
}

const ANTHROPIC_REPLY: &str = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"Paris, then.","signature":"EqQBCgIYAhIM"},{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"city":"Paris"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":30,"output_tokens":12,"cache_read_input_tokens":4,"cache_creation_input_tokens":0}}"#;

const TEXT_REPLY: &str = r#"{"id":"msg_02","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":2}}"#;

#[test]
fn openai_client_reaches_an_anthropic_provider_natively() {
    let p = Scripted::start(|_| Action::Reply(json_response(200, ANTHROPIC_REPLY)));
    let b = start(&p.addr.to_string());
    let (k, v) = bearer();
    let body = json!({
        "model": "sonnet",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": "required",
        "logit_bias": {"50256": -100}
    });
    let r =
        Client::connect(b.addr).post_json("/v1/chat/completions", &body.to_string(), &[(k, &v)]);
    assert_eq!(r.status, 200, "{}", r.text());

    let got = p.next_request();
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.header("x-api-key"), Some(PROVIDER_KEY));
    assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        got.header("authorization"),
        None,
        "the client's bearer key never goes up"
    );
    let up: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(up["model"], "claude-sonnet-4-5");
    assert_eq!(
        up["max_tokens"], 2048,
        "the model's configured default fills max_tokens"
    );
    assert_eq!(up["system"], "Be brief.");
    assert_eq!(up["tools"][0]["input_schema"]["required"], json!(["city"]));
    assert_eq!(up["tool_choice"], json!({"type": "any"}));
    assert!(up.get("logit_bias").is_none());

    let out = r.json();
    assert_eq!(out["object"], "chat.completion");
    assert!(
        out["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{out}"
    );
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    let call = &out["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(
        call["id"], "toolu_01A",
        "tool-call ids are carried unchanged"
    );
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(
        out["usage"]["prompt_tokens"], 34,
        "input plus cache reads, as OpenAI counts"
    );
    assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    let dropped = r.header("x-busbar-dropped").expect("losses are named");
    assert!(dropped.contains("logit_bias"), "{dropped}");
    assert!(
        dropped.contains("content[0]"),
        "the thinking block has no OpenAI home: {dropped}"
    );
}

#[test]
fn strict_models_refuse_a_lossy_translation_in_the_callers_shape() {
    let p = Scripted::start(|_| Action::Reply(json_response(200, TEXT_REPLY)));
    let b = start(&p.addr.to_string());
    let (k, v) = bearer();
    let body = r#"{"model":"sonnet-strict","messages":[{"role":"user","content":"hi"}],"logit_bias":{"1":1}}"#;
    let mut c = Client::connect(b.addr);
    let r = c.post_json("/v1/chat/completions", body, &[(k, &v)]);
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["code"], "lossy_translation");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openai.logit_bias"),
        "{e}"
    );
    assert!(p.try_next().is_none(), "nothing was sent upstream");
    // The same request without the field goes through.
    let ok = r#"{"model":"sonnet-strict","messages":[{"role":"user","content":"hi"}]}"#;
    let r = c.post_json("/v1/chat/completions", ok, &[(k, &v)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-busbar-dropped"), None);
}

#[test]
fn provider_errors_keep_their_status_and_take_the_callers_shape() {
    let p = Scripted::start(|req| {
        let body = String::from_utf8_lossy(&req.body);
        if body.contains("overload") {
            Action::Reply(json_response(
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ))
        } else if body.contains("limit") {
            let mut r = json_response(
                429,
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
            );
            let at = r.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            r.splice(at..at, b"\r\nretry-after: 17".iter().copied());
            Action::Reply(r)
        } else {
            Action::Reply(json_response(
                400,
                r#"{"error":{"message":"Invalid 'messages': empty.","type":"invalid_request_error","param":"messages","code":null}}"#,
            ))
        }
    });
    let b = start(&p.addr.to_string());
    let (k, v) = bearer();
    let mut c = Client::connect(b.addr);

    // Anthropic's 529 to an OpenAI client.
    let r = c.post_json(
        "/v1/chat/completions",
        r#"{"model":"sonnet","messages":[{"role":"user","content":"overload"}]}"#,
        &[(k, &v)],
    );
    assert_eq!(r.status, 529);
    let e = r.json();
    assert_eq!(e["error"]["message"], "Overloaded");
    assert!(e["error"]["type"].is_string());
    assert_eq!(
        r.header("x-busbar-upstream-error"),
        Some("overloaded_error")
    );

    // Anthropic's 429 to an OpenAI client: still a 429, with the provider's Retry-After.
    let r = c.post_json(
        "/v1/chat/completions",
        r#"{"model":"sonnet","messages":[{"role":"user","content":"limit"}]}"#,
        &[(k, &v)],
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("17"));
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");

    // OpenAI's 400 to an Anthropic client, in Anthropic's shape.
    let r = c.post_json(
        "/v1/messages",
        r#"{"model":"gpt","max_tokens":10,"messages":[{"role":"user","content":"x"}]}"#,
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
        ],
    );
    assert_eq!(r.status, 400);
    let e = r.json();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["message"], "Invalid 'messages': empty.");
}

#[test]
fn each_ingress_has_its_auth_carrier_and_error_shape() {
    let p = Scripted::start(|_| Action::Reply(json_response(200, ANTHROPIC_REPLY)));
    let b = start(&p.addr.to_string());
    let mut c = Client::connect(b.addr);

    // Anthropic: x-api-key; an unknown model is Anthropic's not_found_error.
    let r = c.post_json(
        "/v1/messages",
        r#"{"model":"nope","max_tokens":5,"messages":[]}"#,
        &[("x-api-key", CLIENT_KEY)],
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    let r = c.post_json(
        "/v1/messages",
        r#"{"model":"sonnet","max_tokens":5,"messages":[]}"#,
        &[],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-api-key")
    );

    // Gemini: x-goog-api-key or ?key=; errors carry google.rpc status names.
    let r = c.post_json(
        "/v1beta/models/sonnet:generateContent",
        r#"{"contents":[]}"#,
        &[],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(r.json()["error"]["code"], 401);
    let r = c.get(&format!("/v1beta/models?key={CLIENT_KEY}"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let models = r.json();
    let names: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"models/sonnet"), "{models}");
    let sonnet = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "models/sonnet")
        .unwrap();
    assert_eq!(sonnet["inputTokenLimit"], 200000);

    // Bedrock: a SigV4-signed client is told to use a bearer key; errors carry x-amzn-ErrorType.
    let r = c.post_json(
        "/model/sonnet/converse",
        r#"{"messages":[]}"#,
        &[("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00")],
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("UnrecognizedClientException")
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("AWS_BEARER_TOKEN_BEDROCK")
    );

    // Cohere: bearer; its error shape is a bare message.
    let r = c.post_json(
        "/v2/chat",
        r#"{"model":"nope","messages":[]}"#,
        &[("Authorization", &format!("Bearer {CLIENT_KEY}"))],
    );
    assert_eq!(r.status, 404);
    assert!(r.json()["message"].as_str().unwrap().contains("`nope`"));

    // Model lists: OpenAI's shape, or Anthropic's when the client says anthropic-version.
    let r = c.get(
        "/v1/models",
        &[("Authorization", &format!("Bearer {CLIENT_KEY}"))],
    );
    assert_eq!(r.json()["object"], "list");
    let r = c.get(
        "/v1/models",
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
        ],
    );
    let list = r.json();
    assert_eq!(list["has_more"], false);
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["type"] == "model"),
        "{list}"
    );
}

#[test]
fn azure_api_key_and_query_reach_an_openai_compatible_provider() {
    const COMPLETION: &str = r#"{"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
    let p = Scripted::start(|_| Action::Reply(json_response(200, COMPLETION)));
    let config = format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[providers.azure]
protocol = "openai"
base_url = "http://{}/openai/v1"
auth = "api-key"
query = "api-version=2024-10-21"
api_key_env = "TR_PROVIDER_KEY"
[models.gpt]
provider = "azure"
upstream = "my-deployment"
"#,
        p.addr
    );
    let b = Busbar::start(&config, "epoll", &[("TR_PROVIDER_KEY", PROVIDER_KEY)]);
    // An Anthropic client, so the request is translated and the egress path is busbar's own.
    let r = Client::connect(b.addr).post_json(
        "/v1/messages",
        r#"{"model":"gpt","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
        &[("anthropic-version", "2023-06-01")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], "hi");
    let got = p.next_request();
    assert_eq!(
        got.path,
        "/openai/v1/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(got.header("api-key"), Some(PROVIDER_KEY));
    assert_eq!(got.header("authorization"), None);
    let up: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(up["model"], "my-deployment");
    assert_eq!(up["max_completion_tokens"], 16);
}

#[test]
fn same_protocol_streams_pass_through_for_anthropic_and_gemini() {
    let anthropic_sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let gemini_sse = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"}}]}\r\n\r\n";
    let p = Scripted::start(move |req| {
        let body = if req.path.contains("streamGenerateContent") {
            gemini_sse
        } else {
            anthropic_sse
        };
        let mid = body.len() / 2;
        Action::Stream(
            vec![
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
                format!("{:x}\r\n{}\r\n", mid, &body[..mid]).into_bytes(),
                format!("{:x}\r\n{}\r\n0\r\n\r\n", body.len() - mid, &body[mid..]).into_bytes(),
            ],
            false,
        )
    });
    let config = format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
[providers.claude]
protocol = "anthropic"
base_url = "http://{a}/v1"
api_key_env = "TR_PROVIDER_KEY"
[providers.google]
protocol = "gemini"
base_url = "http://{a}/v1beta"
api_key_env = "TR_PROVIDER_KEY"
[models.sonnet]
provider = "claude"
upstream = "claude-sonnet-4-5"
[models.flash]
provider = "google"
upstream = "gemini-2.5-flash"
"#,
        a = p.addr
    );
    let b = Busbar::start(&config, "epoll", &[("TR_PROVIDER_KEY", PROVIDER_KEY)]);
    let mut c = Client::connect(b.addr);
    let body = r#"{"model":"sonnet","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = c.post_json("/v1/messages", body, &[("anthropic-version", "2023-06-01")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        anthropic_sse,
        "the provider's events, byte for byte"
    );
    let got = p.next_request();
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(
        got.header("anthropic-version"),
        Some("2023-06-01"),
        "the client's version goes on"
    );
    assert_eq!(
        String::from_utf8_lossy(&got.body),
        body.replace("\"sonnet\"", "\"claude-sonnet-4-5\""),
        "only the model is spliced"
    );

    let gbody = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;
    let r = c.post_json(
        "/v1beta/models/flash:streamGenerateContent?alt=sse&key=client-side",
        gbody,
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), gemini_sse);
    let got = p.next_request();
    assert_eq!(
        got.path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        "the model in the URL is the provider's; the client's key stays behind"
    );
    assert_eq!(got.header("x-goog-api-key"), Some(PROVIDER_KEY));
    assert_eq!(got.body, gbody.as_bytes());
}
