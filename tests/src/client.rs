//! A raw HTTP/1.1 client: the test writes exact bytes and reads the response as it comes.

use busbar_codec::http1::{BodyFraming, ChunkedDecoder, parse_response_head};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The body bytes exactly as they arrived (chunk framing included).
    pub raw_body: Vec<u8>,
}

impl Response {
    /// First value of a header (lower-case name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (panics with the body text if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects (a generous read timeout guards against a hung test, it is not asserted on).
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to busbar");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to busbar");
    }

    fn fill(&mut self) -> usize {
        let mut tmp = [0u8; 16384];
        match self.stream.read(&mut tmp) {
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("read from busbar: {e}"),
        }
    }

    /// Reads one response (for a request of method `method`).
    pub fn read_response(&mut self) -> Response {
        self.try_read_response()
            .expect("connection closed before a response")
    }

    /// Reads one response; `None` if the connection closed first.
    pub fn try_read_response(&mut self) -> Option<Response> {
        let head = loop {
            if let Some(h) =
                parse_response_head(&self.buf, 1 << 20, false).expect("valid response head")
            {
                break h;
            }
            if self.fill() == 0 {
                return None;
            }
        };
        self.buf.drain(..head.head_len);
        let mut body = Vec::new();
        let mut raw = Vec::new();
        match head.framing {
            BodyFraming::Empty => {}
            BodyFraming::Length(n) => {
                while (self.buf.len() as u64) < n {
                    assert!(self.fill() > 0, "closed mid-body");
                }
                raw = self.buf.drain(..n as usize).collect();
                body = raw.clone();
            }
            BodyFraming::Chunked => {
                let mut d = ChunkedDecoder::new();
                loop {
                    let used = d
                        .feed(&self.buf, |s| body.extend_from_slice(s))
                        .expect("valid chunked body");
                    raw.extend(self.buf.drain(..used));
                    if d.is_done() {
                        break;
                    }
                    assert!(self.fill() > 0, "closed mid-chunked-body");
                }
            }
            BodyFraming::Close => {
                while self.fill() > 0 {}
                raw = std::mem::take(&mut self.buf);
                body = raw.clone();
            }
        }
        let headers = head
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_ascii_lowercase(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        Some(Response {
            status: head.status,
            headers,
            body,
            raw_body: raw,
        })
    }

    /// Reads until the peer closes; returns what arrived. Used to see a connection end.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        while self.fill() > 0 {}
        std::mem::take(&mut self.buf)
    }

    /// Reads until at least `n` bytes are buffered (or the peer closes); returns the buffer.
    pub fn read_at_least(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            if self.fill() == 0 {
                break;
            }
        }
        self.buf.clone()
    }

    /// Drops `n` buffered bytes (after inspecting them with `read_at_least`).
    pub fn discard(&mut self, n: usize) {
        self.buf.drain(..n);
    }

    /// Sends a POST with a JSON body and reads the response.
    pub fn post_json(
        &mut self,
        path: &str,
        body: &str,
        extra_headers: &[(&str, &str)],
    ) -> Response {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: busbar\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in extra_headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.send(req.as_bytes());
        self.read_response()
    }

    /// Sends any method with an optional JSON body and reads the response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra_headers: &[(&str, &str)],
    ) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: busbar\r\n");
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        for (k, v) in extra_headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or_default());
        self.send(req.as_bytes());
        self.read_response()
    }

    /// Sends a GET and reads the response.
    pub fn get(&mut self, path: &str, extra_headers: &[(&str, &str)]) -> Response {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: busbar\r\n");
        for (k, v) in extra_headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.send(req.as_bytes());
        self.read_response()
    }
}
