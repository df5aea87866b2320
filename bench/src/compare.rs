//! `busbar-bench compare`: in one run, the same load direct to the mock and through each proxy
//! (busbar, and nginx as a plain keep-alive reverse proxy), several fresh starts each, medians.
//!
//! ```text
//!   load cpu:  mock (child process) + load generator (thread)
//!   proxy cpu: busbar (shards = 1) | nginx (1 worker), pinned with taskset
//!   per start: idle RSS -> c=1 direct, c=1 through -> c=64 through, c=64 direct -> peak RSS
//!              CPU per request = proxy's utime+stime over the through loads / requests served
//! ```
//! Starts alternate between proxies so that machine noise falls on both alike.
//!
//! With `--provider` other than `openai`, busbar's provider speaks that protocol: the client
//! still sends OpenAI Chat, busbar translates (and transcodes the stream), and the direct
//! baseline is the same request in the provider's own protocol, sent straight to the mock, so
//! "added" is what the translation costs over a native call. Time to first token (TTFT) is what
//! a streaming client waits for its first text delta.

use crate::load::{self, LoadReport, LoadSpec, Target};
use crate::procfs;
use crate::stats::median;
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const NGINX_TEMPLATE: &str = include_str!("../nginx/nginx.conf");

/// What to compare.
pub(crate) struct CompareSpec {
    pub(crate) busbar: PathBuf,
    pub(crate) runs: usize,
    pub(crate) proxy_cpu: usize,
    pub(crate) load_cpu: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) nginx: bool,
    pub(crate) body: String,
    pub(crate) json: Option<PathBuf>,
    /// Extra arguments for busbar (e.g. `--driver epoll`).
    pub(crate) busbar_args: Vec<String>,
    /// The protocol busbar's provider speaks (the client always speaks OpenAI Chat).
    pub(crate) provider: busbar_codec::Protocol,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proxy {
    Busbar,
    Nginx,
}

impl Proxy {
    fn name(self) -> &'static str {
        match self {
            Proxy::Busbar => "busbar",
            Proxy::Nginx => "nginx",
        }
    }
}

/// One fresh start's numbers.
#[derive(Default, Clone)]
struct RunResult {
    added_ttft_p50: f64,
    added_ttft_p99: f64,
    through_ttft_p50: f64,
    direct_ttft_p50: f64,
    added_p50: f64,
    added_p99: f64,
    added_p999: f64,
    through_p50: f64,
    direct_p50: f64,
    rps64: f64,
    direct_rps64: f64,
    cpu_us_per_req: f64,
    idle_rss_kib: f64,
    peak_rss_kib: f64,
    errors: f64,
}

type Metric = (&'static str, fn(&RunResult) -> f64);

const METRICS: &[Metric] = &[
    ("added TTFT p50 (us), c=1", |r| r.added_ttft_p50),
    ("added TTFT p99 (us), c=1", |r| r.added_ttft_p99),
    ("through TTFT p50 (us), c=1", |r| r.through_ttft_p50),
    ("direct TTFT p50 (us), c=1", |r| r.direct_ttft_p50),
    ("added latency p50 (us), c=1", |r| r.added_p50),
    ("added latency p99 (us), c=1", |r| r.added_p99),
    ("added latency p99.9 (us), c=1", |r| r.added_p999),
    ("through p50 (us), c=1", |r| r.through_p50),
    ("direct p50 (us), c=1", |r| r.direct_p50),
    ("requests/s through, c=64", |r| r.rps64),
    ("requests/s direct, c=64", |r| r.direct_rps64),
    ("CPU per request (us)", |r| r.cpu_us_per_req),
    ("RSS idle (KiB)", |r| r.idle_rss_kib),
    ("RSS peak (KiB)", |r| r.peak_rss_kib),
    ("errors", |r| r.errors),
];

/// A started child whose stdout is read line by line until `marker`; returns the line.
fn wait_for_line(child: &mut Child, marker: &str) -> Result<String, String> {
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err(format!("process exited before printing `{marker}`"));
        }
        if line.contains(marker) {
            let found = line.clone();
            std::thread::spawn(move || {
                let mut sink = String::new();
                let _ = reader.read_to_string(&mut sink);
            });
            return Ok(found);
        }
    }
}

fn port_after(line: &str, marker: &str) -> Result<u16, String> {
    line.split(marker)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("no port in `{}`", line.trim()))
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

struct Running {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Running {
    fn pids(&self) -> Vec<u32> {
        let mut p = vec![self.child.id()];
        p.extend(procfs::children(self.child.id()));
        p
    }

    fn cpu_ticks(&self) -> u64 {
        self.pids().into_iter().filter_map(procfs::cpu_ticks).sum()
    }

    fn mem_kib(&self, field: &str) -> u64 {
        self.pids()
            .into_iter()
            .filter_map(|p| procfs::mem_kib(p, field))
            .sum()
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn start_proxy(proxy: Proxy, spec: &CompareSpec, mock_port: u16) -> Result<Running, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    match proxy {
        Proxy::Busbar => {
            let cfg = dir.path().join("busbar.toml");
            std::fs::write(
                &cfg,
                format!(
                    "listen = \"127.0.0.1:0\"\nshards = 1\n[providers.mock]\nprotocol = \"{}\"\nbase_url = \"http://127.0.0.1:{mock_port}{}\"\n{}\
                     [models.mock-model]\nprovider = \"mock\"\nupstream = \"mock-model\"\n",
                    spec.provider.as_str(),
                    base_path(spec.provider),
                    if spec.provider == busbar_codec::Protocol::Bedrock {
                        "auth = \"none\"\n"
                    } else {
                        ""
                    },
                ),
            )
            .map_err(|e| e.to_string())?;
            let mut child = Command::new("taskset")
                .arg("-c")
                .arg(spec.proxy_cpu.to_string())
                .arg(&spec.busbar)
                .arg("--config")
                .arg(&cfg)
                .args(["--admin-listen", "off"])
                .args(
                    (!spec.busbar_args.iter().any(|a| a == "--ledger"))
                        .then_some(["--ledger", "off"])
                        .into_iter()
                        .flatten(),
                )
                .args(&spec.busbar_args)
                .env("BUSBAR_LOG", "warn")
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", spec.busbar.display()))?;
            let line = wait_for_line(&mut child, "listening on ")?;
            let port = port_after(&line, "listening on ")?;
            Ok(Running {
                child,
                port,
                _dir: dir,
            })
        }
        Proxy::Nginx => {
            let port = free_port()?;
            let conf = dir.path().join("nginx.conf");
            let text = NGINX_TEMPLATE
                .replace("{PREFIX}", &dir.path().display().to_string())
                .replace("{LISTEN_PORT}", &port.to_string())
                .replace("{MOCK_PORT}", &mock_port.to_string());
            std::fs::write(&conf, text).map_err(|e| e.to_string())?;
            let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .ok_or("nginx is not installed: apt-get install -y nginx")?;
            let child = Command::new("taskset")
                .arg("-c")
                .arg(spec.proxy_cpu.to_string())
                .arg(nginx)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-g")
                .arg("daemon off;")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start nginx: {e}"))?;
            // nginx prints nothing when ready: poll its port (bounded).
            for _ in 0..5000 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(Running {
                        child,
                        port,
                        _dir: dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err("nginx did not start listening within 10 s".into())
        }
    }
}

/// Where busbar's provider lives on the mock, by protocol.
fn base_path(p: busbar_codec::Protocol) -> &'static str {
    use busbar_codec::Protocol::*;
    match p {
        OpenAiChat | OpenAiResponses | Anthropic => "/v1",
        Gemini => "/v1beta",
        Cohere => "/v2",
        Bedrock => "",
    }
}

/// A request, where it goes.
#[derive(Clone)]
struct Call {
    path: String,
    body: String,
}

/// The client's OpenAI request, as the provider's protocol asks it of the mock directly.
fn native(spec: &CompareSpec) -> Result<Call, String> {
    use busbar_codec::Protocol::*;
    let ir = busbar_codec::openai::parse_request(spec.body.as_bytes())
        .map_err(|e| format!("--body: {e}"))?;
    let mut loss = busbar_codec::ir::LossReport::default();
    let body = busbar_codec::translate::write_request(spec.provider, &ir, 4096, &mut loss);
    let m = &ir.model;
    let path = match (spec.provider, ir.stream) {
        (OpenAiChat, _) => "/v1/chat/completions".to_string(),
        (OpenAiResponses, _) => "/v1/responses".into(),
        (Anthropic, _) => "/v1/messages".into(),
        (Gemini, true) => format!("/v1beta/models/{m}:streamGenerateContent?alt=sse"),
        (Gemini, false) => format!("/v1beta/models/{m}:generateContent"),
        (Cohere, _) => "/v2/chat".into(),
        (Bedrock, true) => format!("/model/{m}/converse-stream"),
        (Bedrock, false) => format!("/model/{m}/converse"),
    };
    Ok(Call {
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn load_at(
    spec: &CompareSpec,
    port: u16,
    call: &Call,
    concurrency: usize,
) -> Result<LoadReport, String> {
    let target = Target::parse(&format!("http://127.0.0.1:{port}{}", call.path))?;
    load::run(
        LoadSpec {
            target,
            concurrency,
            rate: None,
            warmup: spec.warmup,
            duration: spec.duration,
            body: call.body.clone().into_bytes(),
            headers: Vec::new(),
        },
        Some(spec.load_cpu),
    )
}

fn q(r: &LoadReport, quantile: f64) -> f64 {
    r.latency_us.value_at_quantile(quantile) as f64
}

fn first_token(r: &LoadReport, quantile: f64) -> f64 {
    r.ttft_us.value_at_quantile(quantile) as f64
}

fn one_run(
    proxy: Proxy,
    spec: &CompareSpec,
    mock_port: u16,
    tps: f64,
) -> Result<RunResult, String> {
    let mut p = start_proxy(proxy, spec, mock_port)?;
    // A moment to settle before the idle reading (not a synchronisation: readiness was awaited).
    std::thread::sleep(Duration::from_millis(300));
    let idle = p.mem_kib("VmRSS");
    let direct = native(spec)?;
    let through = Call {
        path: "/v1/chat/completions".into(),
        body: spec.body.clone(),
    };
    let direct1 = load_at(spec, mock_port, &direct, 1)?;
    let cpu_before = p.cpu_ticks();
    let through1 = load_at(spec, p.port, &through, 1)?;
    let through64 = load_at(spec, p.port, &through, 64)?;
    let cpu_after = p.cpu_ticks();
    let direct64 = load_at(spec, mock_port, &direct, 64)?;
    let peak = p.mem_kib("VmHWM");
    terminate(&mut p.child);
    let served = (through1.completed + through64.completed).max(1) as f64;
    Ok(RunResult {
        added_ttft_p50: first_token(&through1, 0.5) - first_token(&direct1, 0.5),
        added_ttft_p99: first_token(&through1, 0.99) - first_token(&direct1, 0.99),
        through_ttft_p50: first_token(&through1, 0.5),
        direct_ttft_p50: first_token(&direct1, 0.5),
        added_p50: q(&through1, 0.5) - q(&direct1, 0.5),
        added_p99: q(&through1, 0.99) - q(&direct1, 0.99),
        added_p999: q(&through1, 0.999) - q(&direct1, 0.999),
        through_p50: q(&through1, 0.5),
        direct_p50: q(&direct1, 0.5),
        rps64: through64.rps(),
        direct_rps64: direct64.rps(),
        cpu_us_per_req: (cpu_after - cpu_before) as f64 / tps * 1e6 / served,
        idle_rss_kib: idle as f64,
        peak_rss_kib: peak as f64,
        errors: (through1.errors + through64.errors + direct1.errors + direct64.errors) as f64,
    })
}

/// Runs the comparison and prints the report.
pub(crate) fn run(spec: CompareSpec) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut mock = Command::new("taskset")
        .arg("-c")
        .arg(spec.load_cpu.to_string())
        .arg(&exe)
        .args(["mock", "--listen", "127.0.0.1:0", "--no-record"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the mock: {e}"))?;
    let line = wait_for_line(&mut mock, "listening on ")?;
    let mock_port = port_after(&line, "listening on ")?;
    let tps = procfs::ticks_per_second();

    let mut proxies = vec![Proxy::Busbar];
    if spec.nginx && spec.provider != busbar_codec::Protocol::OpenAiChat {
        return Err("--nginx compares a same-protocol proxy: use it with --provider openai".into());
    }
    if spec.nginx {
        proxies.push(Proxy::Nginx);
    }
    let mut results: Vec<Vec<RunResult>> = vec![Vec::new(); proxies.len()];
    let outcome = (|| {
        for run in 0..spec.runs {
            for (i, proxy) in proxies.iter().enumerate() {
                eprintln!("run {}/{}: {}", run + 1, spec.runs, proxy.name());
                results[i].push(one_run(*proxy, &spec, mock_port, tps)?);
            }
        }
        Ok::<(), String>(())
    })();
    terminate(&mut mock);
    outcome?;

    let medians: Vec<Vec<f64>> = results
        .iter()
        .map(|runs| {
            METRICS
                .iter()
                .map(|(_, f)| median(&runs.iter().map(f).collect::<Vec<_>>()))
                .collect()
        })
        .collect();
    println!(
        "busbar-bench compare: {} fresh starts each, medians; proxy on cpu {}, mock and load on cpu {}; {:?} per load after {:?} warm-up; busbar args {:?}; client openai -> provider {}",
        spec.runs,
        spec.proxy_cpu,
        spec.load_cpu,
        spec.duration,
        spec.warmup,
        spec.busbar_args,
        spec.provider.as_str()
    );
    let mut header = format!("{:<32}", "metric");
    for p in &proxies {
        header.push_str(&format!("{:>12}", p.name()));
    }
    if proxies.len() == 2 {
        header.push_str(&format!("{:>16}", "busbar/nginx"));
    }
    println!("{header}");
    for (m, (name, _)) in METRICS.iter().enumerate() {
        let mut row = format!("{name:<32}");
        for per in &medians {
            row.push_str(&format!("{:>12.1}", per[m]));
        }
        if medians.len() == 2 {
            row.push_str(&format!("{:>16.2}", medians[0][m] / medians[1][m]));
        }
        println!("{row}");
    }
    if let Some(path) = &spec.json {
        let per_proxy: serde_json::Map<String, serde_json::Value> = proxies
            .iter()
            .zip(&medians)
            .zip(&results)
            .map(|((p, med), runs)| {
                let m: serde_json::Map<String, serde_json::Value> = METRICS
                    .iter()
                    .zip(med)
                    .map(|((n, _), v)| (n.to_string(), json!(v)))
                    .collect();
                let raw: Vec<serde_json::Value> = runs
                    .iter()
                    .map(|r| {
                        METRICS
                            .iter()
                            .map(|(n, f)| (n.to_string(), json!(f(r))))
                            .collect::<serde_json::Map<_, _>>()
                            .into()
                    })
                    .collect();
                (p.name().to_string(), json!({"median": m, "runs": raw}))
            })
            .collect();
        let doc = json!({"runs": spec.runs, "duration_s": spec.duration.as_secs_f64(), "proxies": per_proxy});
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
