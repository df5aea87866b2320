//! The request busbar sends a provider, in the provider's protocol: path, credentials, headers.
//!
//! ```text
//!   openai     POST {prefix}/chat/completions               Authorization: Bearer
//!   responses  POST {prefix}/responses                      Authorization: Bearer
//!   anthropic  POST {prefix}/messages                       x-api-key + anthropic-version
//!   gemini     POST {prefix}/models/{model}:generateContent x-goog-api-key
//!   cohere     POST {prefix}/chat                           Authorization: Bearer
//!   bedrock    POST {prefix}/model/{model}/converse         SigV4 (aws-sigv4) or Bearer
//!   (+ Azure `api-key`, a provider-wide query such as api-version=...)
//! ```

use crate::server::respond::ApiError;
use busbar_codec::Protocol;
use busbar_codec::errors::ErrorKind;
use busbar_codec::http1::{Fields, write_forwardable};
use busbar_core::config::{Auth, AwsSigning, Endpoint, Provider};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::time::SystemTime;

/// Characters escaped in a model id placed in a path segment (`:` and `/` included).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Client headers never forwarded: framing and hop-by-hop fields, and the client's own
/// credentials and account selectors (busbar injects the provider's). `accept-encoding` is
/// dropped so provider bodies arrive uncompressed and usage can be read on the side.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "expect",
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "openai-organization",
    "openai-project",
    "accept-encoding",
    "cookie",
];

/// Header families that belong to one protocol's clients: not forwarded to a provider of
/// another protocol.
const PROTOCOL_FAMILIES: &[&str] = &[
    "anthropic-",
    "openai-",
    "x-stainless-",
    "x-goog-",
    "x-amz",
    "amz-sdk-",
    "x-fern-",
    "x-client-name",
    "content-type",
];

/// The path (with query) of a generation request to `provider` for `model`.
pub(crate) fn path(
    provider: &Provider,
    model: &str,
    stream: bool,
    client_query: Option<&str>,
) -> String {
    let prefix = match &provider.endpoint {
        Endpoint::Http { path_prefix, .. } => path_prefix.as_str(),
        Endpoint::Mock(_) => "",
    };
    let m = utf8_percent_encode(model, SEGMENT);
    let mut p = match provider.protocol {
        Protocol::OpenAiChat => format!("{prefix}/chat/completions"),
        Protocol::OpenAiResponses => format!("{prefix}/responses"),
        Protocol::Anthropic => format!("{prefix}/messages"),
        Protocol::Gemini if stream => format!("{prefix}/models/{m}:streamGenerateContent"),
        Protocol::Gemini => format!("{prefix}/models/{m}:generateContent"),
        Protocol::Cohere => format!("{prefix}/chat"),
        Protocol::Bedrock if stream => format!("{prefix}/model/{m}/converse-stream"),
        Protocol::Bedrock => format!("{prefix}/model/{m}/converse"),
    };
    // The client's query goes on (minus a Gemini key, which is the client's credential).
    let mut parts: Vec<&str> = client_query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|kv| !kv.is_empty() && !kv.starts_with("key="))
        .collect();
    if let Some(q) = &provider.query {
        parts.push(q);
    }
    if !parts.is_empty() {
        p.push('?');
        p.push_str(&parts.join("&"));
    }
    p
}

/// Whether a provider can be called at all (its credentials are present); the reason if not.
pub(crate) fn missing_credentials(provider: &Provider) -> Option<String> {
    match &provider.auth {
        Auth::SigV4(s) if s.access_key_id.is_none() || s.secret_access_key.is_none() => {
            Some(format!(
                "provider `{}` has no AWS credentials: set {} and {} in busbar's environment",
                provider.name, s.env_names[0], s.env_names[1]
            ))
        }
        Auth::SigV4(_) | Auth::None => None,
        _ if provider.api_key_env.is_some() && provider.api_key.is_none() => Some(format!(
            "provider `{}` has no API key: set {} in busbar's environment",
            provider.name,
            provider.api_key_env.as_deref().unwrap_or_default()
        )),
        _ => None,
    }
}

/// The client's headers to pass on, when there is a client request to copy from.
pub(crate) struct Forward<'a> {
    pub(crate) headers: &'a Fields,
    /// Same protocol on both sides: protocol-specific headers go on too.
    pub(crate) same_protocol: bool,
    /// busbar's own trace context for this attempt, in place of the client's.
    pub(crate) traceparent: Option<&'a str>,
}

/// A whole upstream request: head and body.
pub(crate) fn build(
    routes: &crate::routes::Routes,
    provider_index: usize,
    path: &str,
    forward: Option<Forward<'_>>,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let provider = &routes.config.providers[provider_index];
    let host = routes.upstream.host_header(provider_index);
    let mut out = routes.upstream.buffers.take();
    out.reserve(768 + body.len());
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(format!("\r\ncontent-length: {}\r\n", body.len()).as_bytes());
    let passthrough = forward.as_ref().is_some_and(|f| f.same_protocol);
    if !passthrough {
        out.extend_from_slice(b"content-type: application/json\r\n");
    }
    let mut client_version = false;
    if let Some(f) = &forward {
        client_version = f.same_protocol && f.headers.get("anthropic-version").is_some();
        write_forwardable(&mut out, f.headers, |name| {
            NOT_FORWARDED.iter().any(|n| n.eq_ignore_ascii_case(name))
                || (f.traceparent.is_some() && name.eq_ignore_ascii_case("traceparent"))
                || (!f.same_protocol
                    && PROTOCOL_FAMILIES.iter().any(|fam| {
                        name.len() >= fam.len() && name[..fam.len()].eq_ignore_ascii_case(fam)
                    }))
        });
    }
    if let Some(tp) = forward.as_ref().and_then(|f| f.traceparent) {
        out.extend_from_slice(b"traceparent: ");
        out.extend_from_slice(tp.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if provider.protocol == Protocol::Anthropic && !client_version {
        out.extend_from_slice(b"anthropic-version: ");
        out.extend_from_slice(provider.anthropic_version.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let key = provider.api_key.as_deref();
    let mut header = |name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    match (&provider.auth, key) {
        (Auth::Bearer, Some(k)) => header("authorization", &format!("Bearer {k}")),
        (Auth::XApiKey, Some(k)) => header("x-api-key", k),
        (Auth::GoogApiKey, Some(k)) => header("x-goog-api-key", k),
        (Auth::AzureApiKey, Some(k)) => header("api-key", k),
        (Auth::SigV4(s), _) => {
            let scheme = match &provider.endpoint {
                Endpoint::Http { tls: true, .. } => "https",
                _ => "http",
            };
            let url = format!("{scheme}://{host}{path}");
            for (name, value) in sigv4(s, &url, host, body)? {
                header(&name, &value);
            }
        }
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(out)
}

/// The headers that sign a POST of `body` to `url` with SigV4 (`authorization`, `x-amz-date`,
/// and `x-amz-security-token` for temporary credentials), computed by AWS's own signer.
pub(crate) fn sigv4(
    s: &AwsSigning,
    url: &str,
    host: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let fail = |what: String| {
        ApiError::new(
            500,
            ErrorKind::Server,
            format!("signing the Bedrock request failed: {what}"),
        )
    };
    let (Some(akid), Some(secret)) = (&s.access_key_id, &s.secret_access_key) else {
        return Err(fail("no AWS credentials".into()));
    };
    let identity = aws_credential_types::Credentials::new(
        akid.clone(),
        secret.clone(),
        s.session_token.clone(),
        None,
        "busbar-config",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&s.region)
        .name(&s.service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| fail(e.to_string()))?
        .into();
    let headers = [("host", host), ("content-type", "application/json")];
    let signable =
        SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| fail(e.to_string()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| fail(e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}
