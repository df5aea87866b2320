//! An OTLP/HTTP trace receiver on loopback: a [`Scripted`] server that answers every export
//! 200 with an empty `ExportTraceServiceResponse`, and decodes what it received with the
//! protocol's own message types (`opentelemetry-proto`, `prost`). The OpenTelemetry Collector
//! cannot be installed here; this is the part of it the tests need.

use crate::{Action, Scripted};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::collections::HashMap;

/// A span as received, with its resource's and its own attributes made plain.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub span: Span,
    /// `service.name` of the resource it came with.
    pub service: Option<String>,
    pub attrs: HashMap<String, AttrValue>,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Other,
}

impl ReceivedSpan {
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.attrs.get(key) {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attrs.get(key) {
            Some(AttrValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn plain(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> AttrValue {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => AttrValue::Str(s.clone()),
        Some(Value::IntValue(i)) => AttrValue::Int(*i),
        Some(Value::DoubleValue(d)) => AttrValue::Double(*d),
        Some(Value::BoolValue(b)) => AttrValue::Bool(*b),
        _ => AttrValue::Other,
    }
}

/// The receiver.
pub struct OtlpReceiver {
    server: Scripted,
    spans: Vec<ReceivedSpan>,
}

impl OtlpReceiver {
    pub fn start() -> OtlpReceiver {
        let server = Scripted::start(|_| {
            Action::Reply(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
                    .to_vec(),
            )
        });
        OtlpReceiver {
            server,
            spans: Vec::new(),
        }
    }

    /// The endpoint to configure: `http://ADDR/v1/traces`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.server.addr)
    }

    /// Every span received so far (exports are decoded as they are taken from the server).
    pub fn spans(&mut self) -> &[ReceivedSpan] {
        while let Some(r) = self.server.try_next() {
            assert_eq!(r.method, "POST");
            assert_eq!(r.path, "/v1/traces");
            assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
            let req = ExportTraceServiceRequest::decode(r.body.as_slice())
                .expect("an OTLP ExportTraceServiceRequest");
            for rs in req.resource_spans {
                let service = rs.resource.as_ref().and_then(|res| {
                    res.attributes
                        .iter()
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| match plain(kv.value.as_ref()) {
                            AttrValue::Str(s) => Some(s),
                            _ => None,
                        })
                });
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        let attrs = span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), plain(kv.value.as_ref())))
                            .collect();
                        self.spans.push(ReceivedSpan {
                            span,
                            service: service.clone(),
                            attrs,
                        });
                    }
                }
            }
        }
        &self.spans
    }
}
