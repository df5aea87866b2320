//! `busbar-bench`: busbar's mock providers, load generator and comparisons.
//!
//! ```text
//!   busbar-bench mock     a mock provider of six protocols, JSON and streams, with scripted faults
//!   busbar-bench load     closed- or open-loop load, HDR latency, table or JSON
//!   busbar-bench compare  direct vs through busbar vs through nginx, fresh starts, medians
//! ```

mod compare;
mod load;
mod mock;
mod procfs;
mod stats;
mod wire;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_BODY: &str =
    r#"{"model":"mock-model","messages":[{"role":"user","content":"hello"}],"max_tokens":16}"#;

const STREAM_BODY: &str = r#"{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"hello"}],"max_tokens":16}"#;

#[derive(Parser)]
#[command(
    name = "busbar-bench",
    about = "busbar's mock providers, load generator and comparisons"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a mock provider; prints `mock: listening on ADDR` when ready.
    Mock {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Time to first token, in ms.
        #[arg(long, default_value_t = 0)]
        ttft_ms: u64,
        /// Gap between streamed tokens, in ms.
        #[arg(long, default_value_t = 0)]
        gap_ms: u64,
        /// Tokens per reply (capped by the request's max tokens).
        #[arg(long, default_value_t = 16)]
        tokens: u64,
        /// Event loops (threads), each with its own SO_REUSEPORT listener.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Pin the mock's threads to this CPU.
        #[arg(long)]
        cpu: Option<usize>,
        /// Do not record requests (for benchmarks).
        #[arg(long)]
        no_record: bool,
        /// A fault rule to start with (repeatable), as JSON, e.g.
        /// `{"model":"m-b","rate":0.5,"status":503}`; see `/_mock/faults`.
        #[arg(long = "fault")]
        faults: Vec<String>,
    },
    /// Generate load against a URL.
    Load {
        #[arg(long)]
        url: String,
        /// Connections (closed loop: requests in flight).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Requests per second (open loop, corrected for coordinated omission).
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value = "10s", value_parser = stats::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "2s", value_parser = stats::parse_duration)]
        warmup: Duration,
        /// Ask for a stream (`"stream": true` in the default body).
        #[arg(long)]
        stream: bool,
        /// Model in the default body.
        #[arg(long, default_value = "mock-model")]
        model: String,
        /// Max tokens in the default body.
        #[arg(long, default_value_t = 16)]
        max_tokens: u64,
        /// Request body (overrides --stream, --model, --max-tokens).
        #[arg(long)]
        body: Option<String>,
        /// A client key, sent as `Authorization: Bearer`.
        #[arg(long)]
        key: Option<String>,
        /// Pin the load generator to this CPU.
        #[arg(long)]
        cpu: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compare direct, through busbar and (optionally) through nginx, in one run.
    Compare {
        /// The busbar binary.
        #[arg(long)]
        busbar: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// CPU for the proxy under test.
        #[arg(long, default_value_t = 0)]
        busbar_cpu: usize,
        /// CPU for the mock and the load generator.
        #[arg(long, default_value_t = 1)]
        load_cpu: usize,
        #[arg(long, default_value = "10s", value_parser = stats::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "1s", value_parser = stats::parse_duration)]
        warmup: Duration,
        /// Also measure nginx as a keep-alive reverse proxy (bench/nginx/nginx.conf).
        #[arg(long)]
        nginx: bool,
        #[arg(long, default_value = DEFAULT_BODY)]
        body: String,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// An extra argument for busbar (repeatable), e.g. `--busbar-arg=--driver --busbar-arg=epoll`.
        #[arg(long = "busbar-arg", allow_hyphen_values = true)]
        busbar_args: Vec<String>,
        /// The protocol of busbar's provider (openai, responses, anthropic, gemini, cohere,
        /// bedrock): other than openai, busbar translates the client's OpenAI requests.
        #[arg(long, default_value = "openai")]
        provider: String,
        /// Stream (`"stream": true` in the default body).
        #[arg(long)]
        stream: bool,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Mock {
            listen,
            ttft_ms,
            gap_ms,
            tokens,
            threads,
            cpu,
            no_record,
            faults,
        } => (|| {
            let rules = faults
                .iter()
                .map(|f| mock::parse_rule(f).map_err(|e| format!("--fault {f}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            mock::run(
                listen,
                threads,
                cpu,
                mock::MockOptions {
                    ttft: Duration::from_millis(ttft_ms),
                    gap: Duration::from_millis(gap_ms),
                    tokens,
                    record: !no_record,
                },
                rules,
            )
        })(),
        Cmd::Load {
            url,
            concurrency,
            rate,
            duration,
            warmup,
            stream,
            model,
            max_tokens,
            body,
            key,
            cpu,
            json,
        } => (|| {
            let target = load::Target::parse(&url)?;
            let body = body.unwrap_or_else(|| {
                serde_json::json!({"model": model, "stream": stream, "max_tokens": max_tokens,
                                       "messages": [{"role": "user", "content": "hello"}]})
                .to_string()
            });
            let headers = key
                .map(|k| vec![("authorization".to_string(), format!("Bearer {k}"))])
                .unwrap_or_default();
            if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
                return Err("--rate must be positive".to_string());
            }
            let report = load::run(
                load::LoadSpec {
                    target,
                    concurrency,
                    rate,
                    warmup,
                    duration,
                    body: body.into_bytes(),
                    headers,
                },
                cpu,
            )?;
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.table());
            }
            Ok(())
        })(),
        Cmd::Compare {
            busbar,
            runs,
            busbar_cpu,
            load_cpu,
            duration,
            warmup,
            nginx,
            body,
            json,
            busbar_args,
            provider,
            stream,
        } => (|| {
            let provider = busbar_codec::Protocol::from_name(&provider)
                .ok_or_else(|| format!("--provider: unknown protocol `{provider}`"))?;
            let body = if stream && body == DEFAULT_BODY {
                STREAM_BODY.to_string()
            } else {
                body
            };
            compare::run(compare::CompareSpec {
                busbar,
                runs: runs.max(1),
                proxy_cpu: busbar_cpu,
                load_cpu,
                warmup,
                duration,
                nginx,
                body,
                json,
                busbar_args,
                provider,
            })
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
