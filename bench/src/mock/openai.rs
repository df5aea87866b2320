//! The mock's OpenAI Chat Completions answers: JSON or SSE, from busbar-codec's mock model.

use super::respond;
use super::sink::Sink;
use super::steer::Steer;
use busbar_codec::mock::{MockReply, MockRequest, OpenAiStream, openai_completion};
use busbar_codec::openai::{ErrorKind, ModelEntry, error_body, models_body};
use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `GET /models`: the one mock model.
pub(super) async fn models(sink: &mut Sink<'_>) -> bool {
    let list = models_body(&[ModelEntry {
        id: "mock-model",
        owned_by: "busbar-bench",
        context_window: None,
        max_output_tokens: None,
    }]);
    sink.write(respond(200, "application/json", &list, &[]))
        .await
}

/// A Chat Completions answer (errors, hangs and rules were dealt with before: mod.rs).
pub(super) async fn handle(
    sink: &mut Sink<'_>,
    body: &[u8],
    steer: Steer,
    seq: &Cell<u64>,
) -> bool {
    let extra: Vec<(&str, String)> = steer
        .retry_after
        .iter()
        .map(|s| ("retry-after", s.to_string()))
        .collect();
    let req = match MockRequest::from_openai(body) {
        Ok(r) => r,
        Err(e) => {
            let err = error_body(ErrorKind::InvalidRequest, &e.to_string(), None, None);
            return sink
                .write(respond(400, "application/json", &err, &[]))
                .await;
        }
    };
    let reply = MockReply::plan(&req, steer.tokens);
    seq.set(seq.get() + 1);
    let id = format!("chatcmpl-mock-{}", seq.get());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if !steer.ttft.is_zero() {
        monoio::time::sleep(steer.ttft).await;
    }
    if !req.stream {
        // Non-streaming answers come from the IR mock, as for the other protocols: tool calls
        // for offered tools, thinking when asked for, the tool's result quoted back.
        let json = match busbar_codec::openai::parse_request(body) {
            Ok(ir) => {
                let mut r = busbar_codec::mock::reply(&ir, steer.tokens);
                r.id = id;
                let mut loss = busbar_codec::ir::LossReport::default();
                busbar_codec::openai::write_response(&r, created, &mut loss)
            }
            Err(_) => openai_completion(&req, &reply, &id, created),
        };
        return sink
            .write(respond(200, "application/json", &json, &extra))
            .await;
    }
    // Tools or thinking: the IR mock's answer, streamed by the codec's writer. Plain chat keeps
    // the token stream the benchmarks measure.
    if let Ok(ir) = busbar_codec::openai::parse_request(body)
        && (!ir.tools.is_empty() || ir.reasoning.is_some() || steer.brk.is_some())
    {
        let mut r = busbar_codec::mock::reply(&ir, steer.tokens);
        r.id = id.clone();
        let w = busbar_codec::stream::StreamWriter::new(
            busbar_codec::Protocol::OpenAiChat,
            created,
            ir.stream_usage,
        );
        return super::protocols::stream_reply(
            sink,
            w,
            &r,
            steer,
            busbar_codec::Protocol::OpenAiChat,
        )
        .await;
    }
    let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    let mut events = OpenAiStream::new(req, reply, id, created);
    while let Some(event) = events.next_event() {
        out.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
        out.extend_from_slice(&event);
        out.extend_from_slice(b"\r\n");
        if !sink.write(std::mem::take(&mut out)).await {
            return false;
        }
        if !steer.gap.is_zero() && events.next_is_token() {
            monoio::time::sleep(steer.gap).await;
        }
    }
    sink.write(b"0\r\n\r\n".to_vec()).await
}
