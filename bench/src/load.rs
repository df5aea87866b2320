//! `busbar-bench load`: closed-loop (fixed concurrency) or open-loop (fixed rate) HTTP load.
//!
//! Open loop is corrected for coordinated omission: request `i` is due at `start + i / rate`,
//! and when no connection was free at that time its latency is measured from when it was due,
//! not from when a connection got round to sending it; a stalled server therefore shows up as
//! the queueing delay a real client would see.
//! Latencies go into an HDR histogram in microseconds. One monoio runtime, on one thread,
//! optionally pinned, runs every connection.

use crate::wire::read_response;
use hdrhistogram::Histogram;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Where requests go.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
    pub(crate) path: String,
}

impl Target {
    /// Parses `http://host:port/path`.
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (host, path) = rest
            .split_once('/')
            .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: no address"))?;
        Ok(Target {
            addr,
            host: host.to_string(),
            path,
        })
    }
}

/// One load run.
#[derive(Debug, Clone)]
pub(crate) struct LoadSpec {
    pub(crate) target: Target,
    pub(crate) concurrency: usize,
    /// Requests per second for an open loop; `None` for a closed loop.
    pub(crate) rate: Option<f64>,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(String, String)>,
}

/// What a run measured (only after the warm-up).
pub(crate) struct LoadReport {
    /// Requests completed in the measured window.
    pub(crate) requests: u64,
    /// Requests completed in all, warm-up included (what the server did the work for).
    pub(crate) completed: u64,
    pub(crate) errors: u64,
    pub(crate) seconds: f64,
    pub(crate) latency_us: Histogram<u64>,
    pub(crate) ttfb_us: Histogram<u64>,
    /// Time to the first generated text (see `wire::ResponseSummary::first_token`).
    pub(crate) ttft_us: Histogram<u64>,
}

impl LoadReport {
    pub(crate) fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        let q = |h: &Histogram<u64>| {
            json!({"p50": h.value_at_quantile(0.5), "p90": h.value_at_quantile(0.9), "p99": h.value_at_quantile(0.99),
                   "p999": h.value_at_quantile(0.999), "max": h.max(), "mean": h.mean()})
        };
        json!({"requests": self.requests, "errors": self.errors, "seconds": self.seconds, "rps": self.rps(),
               "latency_us": q(&self.latency_us), "ttfb_us": q(&self.ttfb_us), "ttft_us": q(&self.ttft_us)})
    }

    pub(crate) fn table(&self) -> String {
        let l = &self.latency_us;
        let t = &self.ttfb_us;
        format!(
            "requests {}  errors {}  rps {:.0}\n\
             {:<8} {:>9} {:>9} {:>9} {:>9} {:>9}\n\
             {:<8} {:>9} {:>9} {:>9} {:>9} {:>9}\n\
             {:<8} {:>9} {:>9} {:>9} {:>9} {:>9}\n\
             {:<8} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            self.requests,
            self.errors,
            self.rps(),
            "us",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "latency",
            l.value_at_quantile(0.5),
            l.value_at_quantile(0.9),
            l.value_at_quantile(0.99),
            l.value_at_quantile(0.999),
            l.max(),
            "ttfb",
            t.value_at_quantile(0.5),
            t.value_at_quantile(0.9),
            t.value_at_quantile(0.99),
            t.value_at_quantile(0.999),
            t.max(),
            "ttft",
            self.ttft_us.value_at_quantile(0.5),
            self.ttft_us.value_at_quantile(0.9),
            self.ttft_us.value_at_quantile(0.99),
            self.ttft_us.value_at_quantile(0.999),
            self.ttft_us.max(),
        )
    }
}

fn histogram() -> Histogram<u64> {
    // 1 us to 10 minutes, 3 significant digits: the constructor cannot fail for these bounds.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Runs `spec` on its own thread (pinned to `cpu` if given) and returns the report.
pub(crate) fn run(spec: LoadSpec, cpu: Option<usize>) -> Result<LoadReport, String> {
    std::thread::spawn(move || {
        if let Some(c) = cpu {
            core_affinity::set_for_current(core_affinity::CoreId { id: c });
        }
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .map_err(|e| format!("load runtime: {e}"))?;
        Ok(rt.block_on(drive(spec)))
    })
    .join()
    .map_err(|_| "load thread panicked".to_string())?
}

struct Shared {
    spec: LoadSpec,
    request: Vec<u8>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    next: Cell<u64>,
    requests: Cell<u64>,
    completed: Cell<u64>,
    errors: Cell<u64>,
    latency: RefCell<Histogram<u64>>,
    ttfb: RefCell<Histogram<u64>>,
    ttft: RefCell<Histogram<u64>>,
}

fn request_bytes(spec: &LoadSpec) -> Vec<u8> {
    let t = &spec.target;
    let mut r = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        t.path,
        t.host,
        spec.body.len()
    );
    for (k, v) in &spec.headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(&spec.body);
    bytes
}

async fn drive(spec: LoadSpec) -> LoadReport {
    let start = Instant::now();
    let shared = Rc::new(Shared {
        request: request_bytes(&spec),
        start,
        measure_from: start + spec.warmup,
        end: start + spec.warmup + spec.duration,
        next: Cell::new(0),
        requests: Cell::new(0),
        completed: Cell::new(0),
        errors: Cell::new(0),
        latency: RefCell::new(histogram()),
        ttfb: RefCell::new(histogram()),
        ttft: RefCell::new(histogram()),
        spec,
    });
    let workers: Vec<_> = (0..shared.spec.concurrency.max(1))
        .map(|_| monoio::spawn(worker(Rc::clone(&shared))))
        .collect();
    for w in workers {
        w.await;
    }
    let seconds = shared.spec.duration.as_secs_f64();
    LoadReport {
        requests: shared.requests.get(),
        completed: shared.completed.get(),
        errors: shared.errors.get(),
        seconds,
        latency_us: shared.latency.borrow().clone(),
        ttfb_us: shared.ttfb.borrow().clone(),
        ttft_us: shared.ttft.borrow().clone(),
    }
}

/// When request number `i` is due in an open loop.
pub(crate) fn due(start: Instant, i: u64, rate: f64) -> Instant {
    start + Duration::from_secs_f64(i as f64 / rate)
}

async fn worker(s: Rc<Shared>) {
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let intended = match s.spec.rate {
            None => Instant::now(),
            Some(rate) => {
                let i = s.next.get();
                s.next.set(i + 1);
                let at = due(s.start, i, rate);
                if at >= s.end {
                    return;
                }
                let now = Instant::now();
                if at > now {
                    // An idle worker waits for the due time; the runtime's timer wakes it up to
                    // a millisecond late, which is the generator's lateness, not the server's:
                    // measure from the actual send. A worker that is already late because the
                    // server was slow measures from the due time (the omission correction).
                    monoio::time::sleep(at - now).await;
                    Instant::now()
                } else {
                    at
                }
            }
        };
        if intended >= s.end {
            return;
        }
        let mut stream = match conn.take() {
            Some(c) => c,
            None => match TcpStream::connect_addr(s.spec.target.addr).await {
                Ok(c) => {
                    let _ = c.set_nodelay(true);
                    buf.clear();
                    c
                }
                Err(_) => {
                    count_error(&s, intended);
                    // Do not spin on a refused connection.
                    monoio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let (res, _) = stream.write_all(s.request.clone()).await;
        if res.is_err() {
            count_error(&s, intended);
            continue;
        }
        match read_response(&mut stream, &mut buf).await {
            Ok(r) => {
                let done = Instant::now();
                s.completed.set(s.completed.get() + 1);
                if intended >= s.measure_from && done <= s.end {
                    if (200..300).contains(&r.status) {
                        s.requests.set(s.requests.get() + 1);
                        let us = |t: Instant| {
                            t.saturating_duration_since(intended).as_micros().max(1) as u64
                        };
                        let _ = s.latency.borrow_mut().record(us(done));
                        let _ = s.ttfb.borrow_mut().record(us(r.first_byte));
                        let _ = s.ttft.borrow_mut().record(us(r.first_token));
                    } else {
                        s.errors.set(s.errors.get() + 1);
                    }
                }
                if r.keep_alive {
                    conn = Some(stream);
                }
            }
            Err(_) => count_error(&s, intended),
        }
    }
}

fn count_error(s: &Shared, intended: Instant) {
    if intended >= s.measure_from {
        s.errors.set(s.errors.get() + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_schedule_is_anchored_to_the_start() {
        let t0 = Instant::now();
        assert_eq!(due(t0, 0, 1000.0), t0);
        assert_eq!(due(t0, 1000, 1000.0) - t0, Duration::from_secs(1));
        assert_eq!(due(t0, 3, 2.0) - t0, Duration::from_millis(1500));
    }

    #[test]
    fn target_parsing() {
        let t = Target::parse("http://127.0.0.1:8080/v1/chat/completions").unwrap();
        assert_eq!(t.addr.port(), 8080);
        assert_eq!(t.path, "/v1/chat/completions");
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(Target::parse("http://127.0.0.1:9").unwrap().path, "/");
        assert!(Target::parse("https://x/").is_err());
    }
}
