//! Starting and stopping the real binaries.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

/// Both I/O drivers; data-path tests run under each.
pub const DRIVERS: [&str; 2] = ["io_uring", "epoll"];

/// Path of a workspace binary: `$BUSBAR_BIN` / `$BUSBAR_BENCH_BIN`, else next to this test
/// executable's profile directory (target/<profile>/).
pub fn bin_path(name: &str) -> PathBuf {
    let var = match name {
        "busbar" => "BUSBAR_BIN",
        _ => "BUSBAR_BENCH_BIN",
    };
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --release --bins` first (tests/run does)",
        p.display()
    );
    p
}

/// A running busbar.
pub struct Busbar {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its admin API listens (started on a free port unless the test says otherwise).
    pub admin: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    _config: tempfile::NamedTempFile,
    /// The ledger directory busbar was given, when the test did not give its own.
    _ledger: Option<tempfile::TempDir>,
}

impl Busbar {
    /// Starts busbar with `config` (TOML) on the given driver, with extra environment variables,
    /// and waits for its `listening on` line.
    pub fn start(config: &str, driver: &str, env: &[(&str, &str)]) -> Busbar {
        Self::start_with(Some(config), driver, env, &[])
    }

    /// Starts busbar with `config` (or, with `None`, on its embedded default), extra arguments
    /// and environment; provider key variables of the caller's environment are removed.
    pub fn start_with(
        config: Option<&str>,
        driver: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Busbar {
        let mut file = tempfile::NamedTempFile::new().expect("temp config");
        let mut cmd = Command::new(bin_path("busbar"));
        if let Some(config) = config {
            std::io::Write::write_all(&mut file, config.as_bytes()).expect("write config");
            cmd.arg("--config").arg(file.path());
        }
        cmd.arg("--driver").arg(driver).args(args);
        if !args.contains(&"--admin-listen") {
            cmd.args(["--admin-listen", "127.0.0.1:0"]);
        }
        // Each busbar gets a ledger of its own (two cannot share one), unless the test names
        // one.
        let ledger =
            (!args.contains(&"--ledger")).then(|| tempfile::tempdir().expect("ledger dir"));
        if let Some(d) = &ledger {
            cmd.arg("--ledger").arg(d.path());
        }
        for var in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GEMINI_API_KEY",
            "MISTRAL_API_KEY",
            "DEEPSEEK_API_KEY",
            "GROQ_API_KEY",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("BUSBAR_LOG", "debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start busbar");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let mut admin = None;
        let addr = loop {
            line.clear();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                let status = child.wait().ok();
                panic!(
                    "busbar exited before listening ({status:?}); stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
            if let Some(rest) = line.split("admin on ").nth(1) {
                let a = rest.split_whitespace().next().unwrap_or_default();
                admin = a.parse::<SocketAddr>().ok();
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                let a = rest.split_whitespace().next().unwrap_or_default();
                break a.parse::<SocketAddr>().expect("listen address");
            }
        };
        assert!(
            line.contains(&format!("driver={driver}")),
            "wrong driver: {line}"
        );
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        Busbar {
            child: Some(child),
            addr,
            admin,
            stderr,
            _config: file,
            _ledger: ledger,
        }
    }

    /// What busbar wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The config file busbar was started with (rewrite it, then reload).
    pub fn config_path(&self) -> &std::path::Path {
        self._config.path()
    }

    /// Sends SIGHUP (reload the config).
    pub fn hup(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg("-HUP")
            .arg(pid.to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -HUP {pid} failed");
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -TERM {pid} failed");
    }

    /// Waits for exit and returns the status.
    pub fn wait(&mut self) -> ExitStatus {
        self.child
            .take()
            .expect("running")
            .wait()
            .expect("wait busbar")
    }

    /// SIGKILL (`kill -9`): no chance to flush or clean up; waits until it is gone.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9 busbar");
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits; asserts a clean exit.
    pub fn stop(mut self) {
        self.terminate();
        let status = self.wait();
        assert!(
            status.success(),
            "busbar exited with {status}; stderr:\n{}",
            self.stderr()
        );
    }
}

impl Drop for Busbar {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `busbar check` on `config`; returns (exit code, stdout + stderr).
pub fn run_check(config: &str) -> (i32, String) {
    let mut file = tempfile::NamedTempFile::new().expect("temp config");
    std::io::Write::write_all(&mut file, config.as_bytes()).expect("write config");
    let out = Command::new(bin_path("busbar"))
        .arg("check")
        .arg(file.path())
        .output()
        .expect("run busbar check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A running `busbar-bench mock`: the mock provider of all six protocols, with its fault
/// rules (`/_mock/faults`) and its record of what it received (`/_mock/requests`).
pub struct MockProvider {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl MockProvider {
    /// Starts the mock with extra arguments and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> MockProvider {
        let mut child = Command::new(bin_path("busbar-bench"))
            .args(["mock", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start busbar-bench mock");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap_or(0) > 0,
                "the mock exited before listening"
            );
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().parse::<SocketAddr>().expect("mock address");
            }
        };
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        MockProvider { child, addr }
    }

    /// Replaces the fault rules (a JSON array of rules).
    pub fn set_faults(&self, rules: serde_json::Value) {
        let body = serde_json::json!({ "rules": rules }).to_string();
        let r = crate::Client::connect(self.addr).post_json("/_mock/faults", &body, &[]);
        assert!(
            r.status < 300,
            "mock refused the rules {body}: {} {}",
            r.status,
            r.text()
        );
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        let mut c = crate::Client::connect(self.addr);
        c.send(b"DELETE /_mock/faults HTTP/1.1\r\nHost: mock\r\nContent-Length: 0\r\n\r\n");
        let r = c.read_response();
        assert!(r.status < 300, "clearing faults: {}", r.status);
    }

    /// The requests the mock received, oldest first (method, path, headers, body).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let r = crate::Client::connect(self.addr).get("/_mock/requests", &[]);
        match r.json() {
            serde_json::Value::Array(a) => a,
            other => panic!("mock requests: {other}"),
        }
    }

    /// How many received requests named `model` (in the body, or in the path).
    pub fn count_for(&self, model: &str) -> usize {
        let quoted = format!("\"model\":\"{model}\"");
        let spaced = format!("\"model\": \"{model}\"");
        self.requests()
            .iter()
            .filter(|r| {
                let body = r["body"].as_str().unwrap_or("");
                let path = r["path"].as_str().unwrap_or("");
                body.contains(&quoted)
                    || body.contains(&spaced)
                    || path.contains(&format!("/{model}:"))
                    || path.contains(&format!("/model/{model}/"))
            })
            .count()
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real `redis-server` on a free loopback port (tests/run installs it), stopped on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    /// The TLS port, when started with [`RedisServer::start_tls`].
    pub tls_port: Option<u16>,
}

/// The files of a Redis that speaks TLS: its certificate and key, and the CA a client's
/// certificate must chain to (clients without one are refused).
pub struct RedisTls<'a> {
    pub cert: &'a std::path::Path,
    pub key: &'a std::path::Path,
    pub client_ca: &'a std::path::Path,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_on(free_port())
    }

    /// Plain TCP on `port` (for the test's own look at the data) and TLS with client
    /// certificates required on `tls_port` (for busbar).
    pub fn start_tls(tls: &RedisTls<'_>) -> RedisServer {
        let tls_port = free_port();
        let mut r = RedisServer::start_with(free_port(), None, |cmd| {
            cmd.arg("--tls-port")
                .arg(tls_port.to_string())
                .arg("--tls-cert-file")
                .arg(tls.cert)
                .arg("--tls-key-file")
                .arg(tls.key)
                .arg("--tls-ca-cert-file")
                .arg(tls.client_ca)
                .args(["--tls-auth-clients", "yes"]);
        });
        r.tls_port = Some(tls_port);
        crate::eventually(10, "redis-server listens for TLS", || {
            std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
        });
        r
    }

    /// On `port` (again, after a stop: a server that kept nothing).
    pub fn start_on(port: u16) -> RedisServer {
        RedisServer::start_with(port, None, |_| {})
    }

    /// On `port`, keeping its data in `dir` (append-only file, fsync always): started again
    /// on the same `dir`, it has what it had.
    pub fn start_persistent(port: u16, dir: &std::path::Path) -> RedisServer {
        RedisServer::start_with(port, Some(dir), |_| {})
    }

    fn start_with(
        port: u16,
        dir: Option<&std::path::Path>,
        more: impl FnOnce(&mut Command),
    ) -> RedisServer {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match dir {
            Some(d) => cmd
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(d),
            None => cmd.args(["--appendonly", "no"]),
        };
        more(&mut cmd);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (tests/run installs it)");
        let r = RedisServer {
            child,
            port,
            tls_port: None,
        };
        crate::eventually(10, "redis-server answers PING", || r.ping());
        r
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(200)));
        let mut buf = [0u8; 16];
        std::io::Write::write_all(&mut s, b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    pub fn url(&self) -> String {
        match self.tls_port {
            Some(p) => format!("rediss://127.0.0.1:{p}"),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// `HGET key field` (None: no such field).
    pub fn hget(&self, key: &str, field: &str) -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let mut req = String::from("*3\r\n$4\r\nHGET\r\n");
        for a in [key, field] {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        std::io::Write::write_all(&mut s, req.as_bytes()).ok()?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let n: i64 = line.trim_end().strip_prefix('$')?.parse().ok()?;
        if n < 0 {
            return None;
        }
        let mut value = String::new();
        r.read_line(&mut value).ok()?;
        Some(value.trim_end().to_string())
    }
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
