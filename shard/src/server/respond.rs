//! Writing busbar's own responses (errors, model lists, health) as complete HTTP/1.1 messages.

use busbar_codec::Protocol;
use busbar_codec::errors::{ErrorKind, render};

/// The standard reason phrase of `status`.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        424 => "Failed Dependency",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        529 => "Overloaded",
        _ => "Unknown",
    }
}

/// A whole response with a body and Content-Length.
pub(crate) fn response(
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    out.extend_from_slice(b"server: busbar\r\ncontent-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(format!("\r\ncontent-length: {}\r\n", body.len()).as_bytes());
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    for (k, v) in extra {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// An error the client made or busbar met, rendered in the caller's protocol's error shape.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) param: Option<&'static str>,
    pub(crate) code: Option<&'static str>,
    /// For 405: the methods the resource allows.
    pub(crate) allow: Option<&'static str>,
    /// The protocol whose error shape the client expects.
    pub(crate) protocol: Protocol,
    /// Extra headers (e.g. a provider's `retry-after`).
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub(crate) fn new(status: u16, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
            allow: None,
            protocol: Protocol::OpenAiChat,
            headers: Vec::new(),
        }
    }

    /// Renders the error in `protocol`'s shape.
    pub(crate) fn for_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Adds a response header.
    pub(crate) fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub(crate) fn param(mut self, p: &'static str) -> Self {
        self.param = Some(p);
        self
    }

    pub(crate) fn code(mut self, c: &'static str) -> Self {
        self.code = Some(c);
        self
    }

    pub(crate) fn allow(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }

    /// The whole HTTP response.
    pub(crate) fn render(&self, keep_alive: bool) -> Vec<u8> {
        let r = render(
            self.protocol,
            self.status,
            self.kind,
            &self.message,
            self.param,
            self.code,
        );
        let mut extra: Vec<(&str, &str)> = self.allow.iter().map(|m| ("allow", *m)).collect();
        extra.extend(r.headers.iter().map(|(k, v)| (*k, v.as_str())));
        extra.extend(self.headers.iter().map(|(k, v)| (*k, v.as_str())));
        response(self.status, "application/json", &r.body, keep_alive, &extra)
    }
}
