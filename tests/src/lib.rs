//! busbar-tests: what the black-box tests share.
//!
//! ```text
//!   Busbar     the real `busbar` binary, started on a free port with a given config
//!   Scripted   a scripted provider on a free loopback port: records what it receives and
//!              answers with raw bytes the test chose (the providers themselves cannot run here)
//!   Client     a raw HTTP/1.1 client on a std socket, for byte-exact requests
//!   MockProvider  `busbar-bench mock`, all six protocols, with fault rules set at run time
//!   OtlpReceiver  an OTLP/HTTP trace receiver (opentelemetry-proto types)
//! ```
//!
//! No fixed ports: everything binds port 0 and reports the port it got. No sleeps as
//! synchronisation: readiness is the `listening on` line, completion is a read returning.

pub mod client;
pub mod otlp;
pub mod pki;
pub mod procs;
pub mod scripted;

pub use client::{Client, Response};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use pki::{Ca, ClientTls, Issued, TlsConn};
pub use procs::{Busbar, DRIVERS, MockProvider, RedisServer, RedisTls, bin_path, run_check};
pub use scripted::{Action, Received, Scripted, json_response};

/// Polls `f` until it holds, for at most `secs` seconds (a bound on waiting for an event, not
/// a timing assertion).
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("not within {secs} s: {what}");
}
