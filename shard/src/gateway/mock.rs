//! The built-in `mock` provider, answered inside the shard: no socket, no provider key. It
//! exists so that busbar answers out of the box; its timing (time to first token, gap between
//! tokens) is real, so streaming behaves as it would against a provider.

use crate::server::client::ClientIo;
use crate::server::respond::{ApiError, response};
use crate::shard::Shard;
use busbar_codec::errors::ErrorKind;
use busbar_codec::http1::RequestHead;
use busbar_codec::mock::{MockReply, MockRequest, OpenAiStream, openai_completion};
use busbar_core::config::MockSettings;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) async fn serve(
    shard: &Shard,
    client: &mut ClientIo,
    head: &RequestHead,
    settings: &MockSettings,
    body: &[u8],
    keep_alive: bool,
) -> bool {
    let req = match MockRequest::from_openai(body) {
        Ok(r) => r,
        Err(e) => {
            return client
                .send(
                    ApiError::new(400, ErrorKind::InvalidRequest, e.to_string()).render(keep_alive),
                )
                .await
                .0
                .is_ok();
        }
    };
    let reply = MockReply::plan(&req, settings.tokens);
    let id = format!("chatcmpl-busbar-{}-{}", shard.id, shard.next_seq());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if settings.ttft_ms > 0 {
        monoio::time::sleep(Duration::from_millis(settings.ttft_ms)).await;
    }
    if !req.stream {
        let json = match busbar_codec::openai::parse_request(body) {
            Ok(ir) => {
                let mut r = busbar_codec::mock::reply(&ir, settings.tokens);
                r.id = id;
                let mut loss = busbar_codec::ir::LossReport::default();
                busbar_codec::openai::write_response(&r, created, &mut loss)
            }
            Err(_) => openai_completion(&req, &reply, &id, created),
        };
        return client
            .send(response(200, "application/json", &json, keep_alive, &[]))
            .await
            .0
            .is_ok();
    }

    let chunked = head.minor_version == 1;
    let keep = keep_alive && chunked;
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nserver: busbar\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n");
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let mut events = OpenAiStream::new(req, reply, id, created);
    while let Some(event) = events.next_event() {
        if chunked {
            out.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
            out.extend_from_slice(&event);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&event);
        }
        let (res, mut o) = client.send(out).await;
        if res.is_err() {
            return false;
        }
        o.clear();
        out = o;
        if settings.token_gap_ms > 0 && events.next_is_token() {
            monoio::time::sleep(Duration::from_millis(settings.token_gap_ms)).await;
        }
    }
    if chunked && client.send(b"0\r\n\r\n".to_vec()).await.0.is_err() {
        return false;
    }
    keep
}
