//! Entry points for the fuzz targets in `fuzz/` (one line each there) and for the corpus replay
//! test. Each one feeds arbitrary bytes to a parser and checks a property that must hold for
//! every input, beyond "does not panic".

use crate::http1::{ChunkedDecoder, parse_request_head, parse_response_head};
use crate::openai::{scan_request, splice_model};

/// Request heads: any input parses, asks for more, or is refused; never panics, and a parsed
/// head never claims more bytes than it was given.
pub fn http1_request_head(data: &[u8]) {
    if let Ok(Some(h)) = parse_request_head(data, 64 * 1024, 100) {
        assert!(h.head_len <= data.len());
        assert!(
            !(h.chunked && h.content_length.is_some()),
            "ambiguous framing accepted"
        );
    }
}

/// Response heads: as for requests.
pub fn http1_response_head(data: &[u8]) {
    if let Ok(Some(h)) = parse_response_head(data, 64 * 1024, false) {
        assert!(h.head_len <= data.len());
    }
}

/// The chunked decoder gives the same result whether the input comes whole or split at a point
/// chosen by the input itself.
pub fn http1_chunked(data: &[u8]) {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let whole = decode(&[body]);
    let at = (cut as usize * body.len()) / 255;
    let split = decode(&[&body[..at], &body[at..]]);
    assert_eq!(whole, split);
}

fn decode(parts: &[&[u8]]) -> Result<(Vec<u8>, usize, bool), crate::http1::ChunkedError> {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut used = 0;
    for p in parts {
        if d.is_done() {
            break;
        }
        used += d.feed(p, |s| out.extend_from_slice(s))?;
    }
    Ok((out, used, d.is_done()))
}

/// Chat Completions bodies: whatever scans, splicing a new model keeps it scannable, with the new
/// model and the same flags.
pub fn openai_request(data: &[u8]) {
    if let Ok(head) = scan_request(data) {
        let spliced = splice_model(data, head.model_span.clone(), "busbar/\"fuzz\"");
        let again = scan_request(&spliced).expect("a spliced body still scans");
        assert_eq!(again.model, "busbar/\"fuzz\"");
        assert_eq!(
            (again.stream, again.include_usage, again.max_output_tokens),
            (head.stream, head.include_usage, head.max_output_tokens)
        );
    }
}

/// Chat Completions bodies through the IR: whatever parses, writes without loss, and the written
/// body parses back to the same IR (the writer's normal form is a fixed point).
pub fn openai_request_ir(data: &[u8]) {
    if let Ok(ir) = crate::openai::parse_request(data) {
        let mut loss = crate::ir::LossReport::default();
        let out = crate::openai::write_request(&ir, &mut loss);
        assert!(
            loss.is_empty(),
            "an OpenAI request lost {:?} on its way back to OpenAI",
            loss.dropped
        );
        let again = crate::openai::parse_request(&out).expect("a written body parses");
        let mut loss2 = crate::ir::LossReport::default();
        assert_eq!(crate::openai::write_request(&again, &mut loss2), out);
    }
}

/// Messages bodies through the IR: whatever parses writes back without loss, and the writer's
/// output is a fixed point.
pub fn anthropic_request_ir(data: &[u8]) {
    if let Ok(ir) = crate::anthropic::parse_request(data) {
        let mut loss = crate::ir::LossReport::default();
        let out = crate::anthropic::write_request(&ir, 1024, &mut loss);
        assert!(
            loss.is_empty(),
            "an Anthropic request lost {:?} on its way back to Anthropic",
            loss.dropped
        );
        let again = crate::anthropic::parse_request(&out).expect("a written body parses");
        let mut loss2 = crate::ir::LossReport::default();
        assert_eq!(
            crate::anthropic::write_request(&again, 1024, &mut loss2),
            out
        );
    }
}

/// Any protocol's request bodies through the IR: whatever parses writes back to the same
/// protocol without loss, and the writer's output is a fixed point.
pub fn request_ir(protocol: crate::Protocol, data: &[u8]) {
    use crate::translate::{parse_request, write_request};
    if let Ok(ir) = parse_request(protocol, data, "fuzz-model") {
        let mut loss = crate::ir::LossReport::default();
        let out = write_request(protocol, &ir, 1024, &mut loss);
        assert!(
            loss.is_empty(),
            "a {} request lost {:?} on its way back",
            protocol.as_str(),
            loss.dropped
        );
        let again = parse_request(protocol, &out, "fuzz-model").expect("a written body parses");
        let mut loss2 = crate::ir::LossReport::default();
        assert_eq!(write_request(protocol, &again, 1024, &mut loss2), out);
    }
}

/// Any protocol's response bodies through the IR: as for requests.
pub fn response_ir(protocol: crate::Protocol, data: &[u8]) {
    use crate::translate::{parse_response, write_response};
    if let Ok(ir) = parse_response(protocol, data) {
        let mut loss = crate::ir::LossReport::default();
        let out = write_response(protocol, &ir, 1_700_000_000, &mut loss);
        assert!(
            loss.is_empty(),
            "a {} response lost {:?} on its way back",
            protocol.as_str(),
            loss.dropped
        );
        let again = parse_response(protocol, &out).expect("a written body parses");
        let mut loss2 = crate::ir::LossReport::default();
        assert_eq!(
            write_response(protocol, &again, 1_700_000_000, &mut loss2),
            out
        );
    }
}

macro_rules! per_protocol {
    ($($name:ident: $f:ident($p:ident);)*) => {$(
        #[doc = concat!("`", stringify!($f), "` for ", stringify!($p), ".")]
        pub fn $name(data: &[u8]) {
            $f(crate::Protocol::$p, data)
        }
    )*};
}

per_protocol! {
    responses_request_ir: request_ir(OpenAiResponses);
    gemini_request_ir: request_ir(Gemini);
    cohere_request_ir: request_ir(Cohere);
    bedrock_request_ir: request_ir(Bedrock);
    openai_response_ir: response_ir(OpenAiChat);
    responses_response_ir: response_ir(OpenAiResponses);
    anthropic_response_ir: response_ir(Anthropic);
    gemini_response_ir: response_ir(Gemini);
    cohere_response_ir: response_ir(Cohere);
    bedrock_response_ir: response_ir(Bedrock);
}

/// Whole request bodies translated: the first byte picks the pair (all 36), the rest is the
/// client's body. Whatever parses in one protocol writes in any other without panicking, and
/// what is written parses in that protocol (what cannot be carried is reported, not invented).
pub fn translate_request(data: &[u8]) {
    use crate::translate::{parse_request, write_request};
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let from = crate::Protocol::ALL[(pick as usize / 6) % 6];
    let to = crate::Protocol::ALL[pick as usize % 6];
    if let Ok(ir) = parse_request(from, body, "fuzz-model") {
        let mut loss = crate::ir::LossReport::default();
        let out = write_request(to, &ir, 1024, &mut loss);
        if let Err(e) = parse_request(to, &out, "fuzz-model") {
            panic!(
                "a {} request written as {} does not parse back: {e}",
                from.as_str(),
                to.as_str()
            );
        }
    }
}

/// Whole response bodies translated: as for requests, provider's answer to client's protocol.
pub fn translate_response(data: &[u8]) {
    use crate::translate::{parse_response, write_response};
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let from = crate::Protocol::ALL[(pick as usize / 6) % 6];
    let to = crate::Protocol::ALL[pick as usize % 6];
    if let Ok(ir) = parse_response(from, body) {
        let mut loss = crate::ir::LossReport::default();
        let out = write_response(to, &ir, 1_700_000_000, &mut loss);
        if let Err(e) = parse_response(to, &out) {
            panic!(
                "a {} response written as {} does not parse back: {e}",
                from.as_str(),
                to.as_str()
            );
        }
    }
}

/// Splits `data` at a point chosen by its first byte: (whole input, left part, right part).
fn cut(data: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (&c, body) = data.split_first()?;
    let at = (c as usize * body.len()) / 255;
    Some((body, &body[..at], &body[at..]))
}

/// SSE: any input decodes to the same events (or the same error) whole or cut anywhere.
pub fn frame_sse(data: &[u8]) {
    use crate::frame::sse::Decoder;
    let Some((body, a, b)) = cut(data) else {
        return;
    };
    let run = |parts: &[&[u8]]| {
        let mut d = Decoder::new(4096);
        let mut ev = Vec::new();
        for p in parts {
            d.feed(p, |e| ev.push(e)).map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(ev)
    };
    let whole = run(&[body]);
    if whole.is_ok() {
        assert_eq!(run(&[a, b]), whole);
    }
}

/// AWS event-stream: as for SSE; and every decoded message re-encodes to the bytes it came from
/// when its headers are all strings.
pub fn frame_eventstream(data: &[u8]) {
    use crate::frame::eventstream::{Decoder, HeaderValue, encode};
    let Some((body, a, b)) = cut(data) else {
        return;
    };
    let run = |parts: &[&[u8]]| {
        let mut d = Decoder::new(1 << 16);
        let mut ms = Vec::new();
        for p in parts {
            d.feed(p, |m| ms.push(m)).map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(ms)
    };
    let whole = run(&[body]);
    assert_eq!(run(&[a, b]), whole);
    for m in whole.into_iter().flatten() {
        let headers: Vec<(&str, HeaderValue)> = m
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        let mut again = Vec::new();
        encode(&mut again, &headers, &m.payload);
        let mut d = Decoder::new(1 << 17);
        let mut back = Vec::new();
        d.feed(&again, |x| back.push(x))
            .expect("an encoded message decodes");
        assert_eq!(back, [m]);
    }
}

/// Gemini's JSON array: as for SSE, and every element is valid JSON when the input's was.
pub fn frame_jsonarray(data: &[u8]) {
    use crate::frame::jsonarray::Decoder;
    let Some((body, a, b)) = cut(data) else {
        return;
    };
    let run = |parts: &[&[u8]]| {
        let mut d = Decoder::new(4096);
        let mut els = Vec::new();
        for p in parts {
            d.feed(p, |e| els.push(e.to_vec()))
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>((els, d.is_done()))
    };
    let whole = run(&[body]);
    if whole.is_ok() {
        assert_eq!(run(&[a, b]), whole);
    }
}

/// Streaming transcoders: the first byte picks the pair (all 36), the rest is the upstream
/// stream; it gives the same client bytes (or the same error) whole or cut anywhere, and never
/// panics.
pub fn stream_transcode(data: &[u8]) {
    use crate::Protocol;
    use crate::stream::Transcoder;
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let from = Protocol::ALL[(pick as usize / 6) % 6];
    let to = Protocol::ALL[pick as usize % 6];
    let Some((_, body, a, b)) = cut(rest).map(|(w, a, b)| ((), w, a, b)) else {
        return;
    };
    let run = |parts: &[&[u8]]| {
        let mut t = Transcoder::new(from, to, 1, true);
        let mut out = Vec::new();
        for p in parts {
            t.feed(p, &mut out).map_err(|e| e.to_string())?;
        }
        t.finish(&mut out);
        Ok::<_, String>(out)
    };
    let whole = run(&[body]);
    if whole.is_ok() {
        assert_eq!(run(&[a, b]), whole);
    }
}

/// Same-protocol passthrough: the first byte picks the protocol (and the Gemini JSON array or
/// the hidden OpenAI usage chunk), the rest is the upstream stream. Whole or cut anywhere gives
/// the same client bytes; without a hidden chunk and without an error, what goes out is a prefix
/// of what came in (nothing is invented, a malformed event never passes).
pub fn stream_passthrough(data: &[u8]) {
    use crate::Protocol;
    use crate::stream::Transcoder;
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let p = Protocol::ALL[pick as usize % 6];
    let json_array = p == Protocol::Gemini && pick & 0x40 != 0;
    let hide = p == Protocol::OpenAiChat && pick & 0x80 != 0;
    let Some((body, a, b)) = cut(rest) else {
        return;
    };
    let run = |parts: &[&[u8]]| {
        let mut t = Transcoder::passthrough(p, json_array, hide);
        let mut out = Vec::new();
        for part in parts {
            if t.feed(part, &mut out).is_err() {
                break;
            }
        }
        t.finish(&mut out);
        (out, t.error().is_none())
    };
    let (whole, clean) = run(&[body]);
    assert_eq!(run(&[a, b]).0, whole);
    if clean && !hide {
        assert!(body.starts_with(&whole), "passthrough invented bytes");
    }
}

/// A fuzz target: arbitrary bytes in, panics on a broken property.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("http1_request_head", http1_request_head),
    ("http1_response_head", http1_response_head),
    ("http1_chunked", http1_chunked),
    ("openai_request", openai_request),
    ("openai_request_ir", openai_request_ir),
    ("anthropic_request_ir", anthropic_request_ir),
    ("responses_request_ir", responses_request_ir),
    ("gemini_request_ir", gemini_request_ir),
    ("cohere_request_ir", cohere_request_ir),
    ("bedrock_request_ir", bedrock_request_ir),
    ("openai_response_ir", openai_response_ir),
    ("responses_response_ir", responses_response_ir),
    ("anthropic_response_ir", anthropic_response_ir),
    ("gemini_response_ir", gemini_response_ir),
    ("cohere_response_ir", cohere_response_ir),
    ("bedrock_response_ir", bedrock_response_ir),
    ("frame_sse", frame_sse),
    ("frame_eventstream", frame_eventstream),
    ("frame_jsonarray", frame_jsonarray),
    ("stream_transcode", stream_transcode),
    ("stream_passthrough", stream_passthrough),
    ("translate_request", translate_request),
    ("translate_response", translate_response),
];
