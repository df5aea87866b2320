//! The mock's answers in the protocols other than Chat Completions: Responses, Anthropic
//! Messages, Gemini, Cohere v2 and Bedrock Converse (JSON and streams), and the routing of
//! paths to protocols.
//!
//! ```text
//!   request bytes --codec parse (the protocol's own)--> IR --mock::reply--> IR
//!                 --codec write (the protocol's own)--> response bytes
//! ```
//!
//! The answer is realistic for each protocol because it is written by the same codec that
//! reads real providers: text, tool calls for offered tools, thinking with a signature when
//! reasoning is asked for, and usage. Steered errors are errors.rs's (the providers' own
//! words); the mock's own refusals here (a bad signature, a body it cannot read) come in the
//! protocol's shape (Bedrock's type in `x-amzn-ErrorType`). A SigV4-signed request is checked
//! by re-signing it with the secret the mock knows (`BUSBAR_MOCK_AWS_SECRET`, default
//! `mock-secret`).

use super::respond;
use super::sink::Sink;
use super::steer::{Break, Steer};
use busbar_codec::Protocol;
use busbar_codec::errors::{ErrorKind, render};
use busbar_codec::http1::RequestHead;
use busbar_codec::ir::LossReport;
use busbar_codec::ir::caller_id;
use busbar_codec::translate;
use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Which protocol a path speaks, and the model in it (Gemini, Bedrock).
pub(super) fn route(path: &str) -> Option<(Protocol, String)> {
    if path.ends_with("/chat/completions") || path.ends_with("/models") {
        return Some((Protocol::OpenAiChat, String::new()));
    }
    if path.ends_with("/responses") {
        return Some((Protocol::OpenAiResponses, String::new()));
    }
    if path.ends_with("/messages") {
        return Some((Protocol::Anthropic, String::new()));
    }
    if let Some((before, verb)) = path.rsplit_once(':')
        && (verb == "generateContent" || verb == "streamGenerateContent")
    {
        let model = before.rsplit_once("/models/").map(|(_, m)| m)?;
        return Some((Protocol::Gemini, decode(model)));
    }
    if let Some(rest) = path.rsplit_once("/model/").map(|(_, r)| r)
        && let Some(model) = rest
            .strip_suffix("/converse")
            .or_else(|| rest.strip_suffix("/converse-stream"))
    {
        return Some((Protocol::Bedrock, decode(model)));
    }
    if path.ends_with("/chat") {
        return Some((Protocol::Cohere, String::new()));
    }
    None
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn error(p: Protocol, status: u16, message: &str, extra: &[(&str, String)]) -> Vec<u8> {
    let r = render(
        p,
        status,
        ErrorKind::from_status(status),
        message,
        None,
        None,
    );
    let mut headers: Vec<(&str, String)> = extra.to_vec();
    headers.extend(r.headers.iter().map(|(k, v)| (*k, v.clone())));
    respond(status, "application/json", &r.body, &headers)
}

/// An answer in `protocol` (errors, hangs and rules were dealt with before: mod.rs).
pub(super) async fn handle(
    sink: &mut Sink<'_>,
    head: &RequestHead,
    body: &[u8],
    steer: Steer,
    seq: &Cell<u64>,
    protocol: Protocol,
    path_model: &str,
) -> bool {
    let extra: Vec<(&str, String)> = steer
        .retry_after
        .iter()
        .map(|s| ("retry-after", s.to_string()))
        .collect();
    if protocol == Protocol::Bedrock
        && let Err(why) = check_sigv4(head, body)
    {
        return sink.write(error(protocol, 403, &why, &[])).await;
    }
    let req = match translate::parse_request(protocol, body, path_model) {
        Ok(r) => r,
        Err(e) => return sink.write(error(protocol, 400, &e.to_string(), &[])).await,
    };
    let mut r = busbar_codec::mock::reply(&req, steer.tokens);
    seq.set(seq.get() + 1);
    r.id = match protocol {
        Protocol::OpenAiResponses => caller_id("resp_", &format!("mock{}", seq.get())),
        Protocol::Anthropic => caller_id("msg_", &format!("mock{}", seq.get())),
        _ => format!("mock-{}", seq.get()),
    };
    if protocol == Protocol::Gemini {
        // Gemini's function calls come without ids, as the real API sends them.
        for b in &mut r.content {
            if let busbar_codec::ir::Block::ToolUse { id, .. } = b {
                id.clear();
            }
        }
    }
    if !steer.ttft.is_zero() {
        monoio::time::sleep(steer.ttft).await;
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let gemini_stream = head.path().ends_with(":streamGenerateContent");
    let path_stream = gemini_stream || head.path().ends_with("/converse-stream");
    if req.stream || path_stream {
        let w = busbar_codec::stream::StreamWriter::new(protocol, created, req.stream_usage);
        let w = if gemini_stream && !head.target.contains("alt=sse") {
            w.gemini_json_array()
        } else {
            w
        };
        return stream_reply(sink, w, &r, steer, protocol).await;
    }
    let mut loss = LossReport::default();
    let json = translate::write_response(protocol, &r, created, &mut loss);
    sink.write(respond(200, "application/json", &json, &extra))
        .await
}

/// Streams the reply event by event in the protocol's own stream format (chunked), with the
/// steered gap between text deltas. A steered break cuts it after `break_after` text deltas
/// (0: before the first block):
/// with the protocol's own error event (then a clean end), with bytes that are no frame of the
/// protocol, or with a TCP reset.
pub(super) async fn stream_reply(
    sink: &mut Sink<'_>,
    mut w: busbar_codec::stream::StreamWriter,
    r: &busbar_codec::ir::Response,
    steer: Steer,
    protocol: Protocol,
) -> bool {
    use busbar_codec::stream::{Event, events_of};
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {}\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
        w.content_type()
    )
    .into_bytes();
    let chunk = |out: &mut Vec<u8>, body: &[u8]| {
        out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    };
    let mut texts = 0;
    for e in events_of(r) {
        if let (Some(brk), 0, Event::BlockStart { .. }) = (steer.brk, steer.break_after, &e) {
            // Broken before any content.
            return break_stream(sink, w, brk, protocol).await;
        }
        let mut body = Vec::new();
        w.event(&e, &mut body);
        if !body.is_empty() {
            chunk(&mut out, &body);
            if !sink.write(std::mem::take(&mut out)).await {
                return false;
            }
        }
        if matches!(e, Event::Text { .. }) {
            texts += 1;
            if !steer.gap.is_zero() {
                monoio::time::sleep(steer.gap).await;
            }
            if let Some(brk) = steer.brk.filter(|_| texts == steer.break_after) {
                return break_stream(sink, w, brk, protocol).await;
            }
        }
    }
    out.extend_from_slice(b"0\r\n\r\n");
    sink.write(out).await
}

/// Ends a stream the way `brk` says.
async fn break_stream(
    sink: &mut Sink<'_>,
    mut w: busbar_codec::stream::StreamWriter,
    brk: Break,
    protocol: Protocol,
) -> bool {
    let mut body = Vec::new();
    match brk {
        Break::Error => {
            // What each provider calls a failure in mid-stream.
            let code = match protocol {
                Protocol::Anthropic => "overloaded_error",
                Protocol::Bedrock => "modelStreamErrorException",
                Protocol::Gemini => "UNAVAILABLE",
                _ => "server_error",
            };
            w.event(
                &busbar_codec::stream::Event::Error {
                    code: Some(code.into()),
                    message: "mock: the stream broke as requested".into(),
                },
                &mut body,
            );
        }
        Break::Garbage => match protocol {
            // A prelude whose CRC cannot match.
            Protocol::Bedrock => body.extend_from_slice(&[0, 0, 0, 32, 0, 0, 0, 0, 1, 2, 3, 4]),
            _ => body.extend_from_slice(b"data: {\"choices\": [{\"delta\": garbage\n\n"),
        },
        Break::Reset => {
            // SO_LINGER 0: closing sends a RST, not a FIN.
            let _ = sink.reset_on_close();
            return false;
        }
    }
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\r\n");
    if brk == Break::Error {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    let _ = sink.write(out).await;
    // Garbage: the connection closes with the body unfinished.
    brk == Break::Error
}

/// Checks a SigV4 `authorization` by signing the same request again, at the time it names,
/// with the secret the mock knows. Unsigned requests pass (bearer keys are checked by nobody).
fn check_sigv4(head: &RequestHead, body: &[u8]) -> Result<(), String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let text = |name: &str| {
        head.header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string)
    };
    let Some(auth) = text("authorization").filter(|a| a.starts_with("AWS4-HMAC-SHA256 ")) else {
        return Ok(());
    };
    let field = |k: &str| {
        auth.split([' ', ','])
            .find_map(|p| p.trim().strip_prefix(k))
            .map(str::to_string)
    };
    let credential = field("Credential=").ok_or("no Credential in the signature")?;
    // Credential=AKID/20261124/us-east-1/bedrock/aws4_request
    let parts: Vec<&str> = credential.split('/').collect();
    let [akid, _, region, service, _] = parts.as_slice() else {
        return Err(format!("malformed credential scope `{credential}`"));
    };
    let date = text("x-amz-date").ok_or("no x-amz-date")?;
    let b = date.as_bytes();
    if b.len() != 16 {
        return Err(format!("malformed x-amz-date `{date}`"));
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &date[0..4],
        &date[4..6],
        &date[6..8],
        &date[9..11],
        &date[11..13],
        &date[13..15]
    );
    let when =
        aws_smithy_types::DateTime::from_str(&iso, aws_smithy_types::date_time::Format::DateTime)
            .map_err(|e| e.to_string())?;
    let when = SystemTime::try_from(when).map_err(|e| e.to_string())?;
    let secret = std::env::var("BUSBAR_MOCK_AWS_SECRET").unwrap_or_else(|_| "mock-secret".into());
    let identity = aws_credential_types::Credentials::new(
        akid.to_string(),
        secret,
        text("x-amz-security-token"),
        None,
        "mock",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(when)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let host = text("host").unwrap_or_default();
    let content_type = text("content-type").unwrap_or_default();
    let url = format!("https://{host}{}", head.target);
    let headers = [
        ("host", host.as_str()),
        ("content-type", content_type.as_str()),
    ];
    let signable =
        SignableRequest::new("POST", &url, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    if expected == auth {
        Ok(())
    } else {
        Err("The request signature we calculated does not match the signature you provided.".into())
    }
}
