//! Starts the real `mcp-guard serve` on a free loopback port with a test configuration.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running gateway; killed (and its children with it) when dropped.
pub struct Running {
    /// The gateway process.
    pub child: Child,
    /// Its MCP endpoint.
    pub url: String,
    /// Its configuration file.
    pub config: PathBuf,
    /// Everything it has written to standard error so far.
    pub logs: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM first, so the gateway stops its upstream processes itself.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a gateway whose `[upstream]` section is `upstream`; `alice` is a `user`, `root` an
/// `admin`, state and audit live in a temporary folder.
pub fn start(upstream: &str) -> Running {
    start_with(upstream, "")
}

/// Like [`start`], with more configuration appended (whole sections).
pub fn start_with(upstream: &str, extra: &str) -> Running {
    start_full(upstream, extra, "state.db")
}

/// Like [`start_with`], keeping state in `store` (several gateways may share one file).
pub fn start_full(upstream: &str, extra: &str, store: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[authorization]
default_role = "readonly"
[[users]]
subject = "alice"
roles = ["user"]
[[users]]
subject = "root"
roles = ["admin"]
[[users]]
subject = "root2"
roles = ["admin"]
[server]
public_url = "http://127.0.0.1:{port}/mcp"
[store]
path = "{store}"
[audit]
path = "audit.jsonl"
[upstream]
{upstream}
{extra}
"#
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        // Upstream children must never see the gateway's own environment.
        .env("MCP_GUARD_TEST_SECRET", "gateway-only-secret-9Xk")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let logs = Arc::new(Mutex::new(String::new()));
    let kept = logs.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && line.contains("mcp-guard listening") {
                let _ = tx.send(());
                sent = true;
            }
            if let Ok(mut l) = kept.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the gateway starts listening");
    Running {
        child,
        url: format!("http://127.0.0.1:{port}/mcp"),
        config,
        logs,
        _dir: dir,
    }
}

impl Running {
    /// A token for `sub` from `mcp-guard token issue` on the same configuration.
    pub fn token(&self, sub: &str) -> String {
        let o = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
            .args(["token", "issue", "--sub", sub, "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    }

    /// The audit lines written so far.
    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.config.with_file_name("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
