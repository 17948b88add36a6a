//! HTTPS in front (DESIGN.md section 8): the real `mcp-guard serve` with a certificate from a test
//! CA made here with rcgen, driven by `curl`; and the configuration errors of the TLS settings.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_mcp-guard");

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The files of a test PKI.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A CA, and a server certificate it signed for `localhost` and `127.0.0.1` (serverAuth).
fn make_pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mcp-guard test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    std::fs::write(&pki.cert, leaf_cert.pem()).unwrap();
    std::fs::write(&pki.key, leaf_key.serialize_pem()).unwrap();
    pki
}

/// The configuration text: `alice` is a `user`, the demo server is the upstream, state lives in
/// `state.db` beside the file; `server` is the body of the `[server]` table.
fn config_text(server: &str) -> String {
    format!(
        r#"[authorization]
default_role = "readonly"

[[users]]
subject = "alice"
roles = ["user"]

[server]
{server}

[store]
path = "state.db"

[upstream]
command = "{EXE}"
args = ["demo", "stdio"]
"#
    )
}

/// A running `mcp-guard serve`; stopped with SIGTERM (then SIGKILL) when dropped.
struct Served {
    child: Child,
    port: u16,
    config: PathBuf,
    pki: Pki,
    stderr: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
    /// Its "listening" log line.
    listening: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
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

/// Starts the gateway over TLS on a free loopback port and waits until it listens.
fn serve_tls() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let config = dir.path().join("gw.toml");
    // The PEM files are named relative to the configuration file.
    std::fs::write(
        &config,
        config_text(&format!(
            "public_url = \"https://127.0.0.1:{port}/mcp\"\ntls_cert_file = \"server.pem\"\ntls_key_file = \"server.key\""
        )),
    )
    .unwrap();
    let served = spawn_served(dir, pki, port, config, &[]);
    assert!(
        served.listening.contains("tls=true"),
        "{}",
        served.listening
    );
    served
}

/// Starts `mcp-guard serve --config CONFIG` with `env` added, and waits until it listens.
fn spawn_served(
    dir: tempfile::TempDir,
    pki: Pki,
    port: u16,
    config: PathBuf,
    env: &[(&str, &str)],
) -> Served {
    let mut command = Command::new(EXE);
    command
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = child.stderr.take().unwrap();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let stderr = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if line.contains("mcp-guard listening") {
                    let _ = tx.send(line.clone());
                }
                stderr.lock().unwrap().push(line);
            }
        });
    }
    let mut served = Served {
        child,
        port,
        config,
        pki,
        stderr,
        dir,
        listening: String::new(),
    };
    served.listening = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the gateway never listened: {:?}", served.log()));
    served
}

impl Served {
    fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/mcp", self.port)
    }

    /// A token from `mcp-guard token issue` on the same configuration (and state file).
    fn token(&self, sub: &str) -> String {
        let o = Command::new(EXE)
            .args(["token", "issue", "--sub", sub, "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    }
}

/// What curl saw.
struct Curl {
    exit: Option<i32>,
    status: u16,
    headers: String,
    body: String,
    stderr: String,
}

impl Curl {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Runs curl with no configuration file and no proxy; `args` come after the common ones.
fn curl(dir: &Path, args: &[&str]) -> Curl {
    let headers = dir.join("curl-headers");
    let _ = std::fs::remove_file(&headers);
    let o: Output = Command::new("curl")
        .arg("-q")
        .args(["--silent", "--show-error", "--noproxy", "*"])
        .args(["--max-time", "10", "--connect-timeout", "5"])
        .arg("--dump-header")
        .arg(&headers)
        .args(["--write-out", "\n%{http_code}"])
        .args(args)
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("curl is installed");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Curl {
        exit: o.status.code(),
        status: code.trim().parse().unwrap_or(0),
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A JSON-RPC POST to `url` trusting the test CA.
fn post(
    gw: &Served,
    url: &str,
    extra: &[&str],
    token: &str,
    session: Option<&str>,
    body: &str,
) -> Curl {
    let ca = gw.pki.ca.to_str().unwrap().to_owned();
    let auth = format!("Authorization: Bearer {token}");
    let sid = session.map(|s| format!("Mcp-Session-Id: {s}"));
    let mut args: Vec<&str> = vec![
        "--cacert",
        &ca,
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-H",
        "Accept: application/json, text/event-stream",
        "--data-binary",
        body,
    ];
    if let Some(s) = &sid {
        args.extend(["-H", s.as_str()]);
    }
    args.extend_from_slice(extra);
    args.push(url);
    curl(gw.dir.path(), &args)
}

#[test]
fn https_with_a_certificate_from_a_test_ca_serves_mcp() {
    let gw = serve_tls();
    let alice = gw.token("alice");

    let r = post(&gw, &gw.url(), &[], &alice, None, INITIALIZE);
    assert_eq!(r.exit, Some(0), "{}", r.stderr);
    assert_eq!(r.status, 200, "{} {:?}", r.body, gw.log());
    let sid = r.header("mcp-session-id").expect("a session id");
    assert!(sid.len() >= 22, "{sid}");
    assert_eq!(r.json()["id"], 1);
    assert!(
        r.json()["result"]["protocolVersion"].is_string(),
        "{}",
        r.body
    );

    let r = post(
        &gw,
        &gw.url(),
        &[],
        &alice,
        Some(&sid),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(r.status, 202, "{}", r.body);

    // The certificate names `localhost` too (pinned to the loopback address).
    let by_name = format!("https://localhost:{}/mcp", gw.port);
    let pin = format!("localhost:{}:127.0.0.1", gw.port);
    let r = post(
        &gw,
        &by_name,
        &["--resolve", &pin],
        &alice,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"over tls"}}}"#,
    );
    assert_eq!(r.exit, Some(0), "{}", r.stderr);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], 2);
    assert!(r.body.contains("over tls"), "{}", r.body);

    // No token: the challenge points at the https metadata, which names the https resource.
    let ca = gw.pki.ca.to_str().unwrap();
    let r = curl(
        gw.dir.path(),
        &["--cacert", ca, "--data-binary", INITIALIZE, &gw.url()],
    );
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap();
    let metadata_url = format!(
        "https://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp",
        gw.port
    );
    assert!(challenge.contains(&metadata_url), "{challenge}");
    let r = curl(gw.dir.path(), &["--cacert", ca, &metadata_url]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["resource"], gw.url());
}

#[test]
fn clients_that_do_not_trust_the_ca_or_speak_plain_http_are_refused() {
    let gw = serve_tls();
    let alice = gw.token("alice");
    let auth = format!("Authorization: Bearer {alice}");

    // The system trust store does not know the test CA: curl refuses the peer (exit 60).
    let r = curl(
        gw.dir.path(),
        &["-H", &auth, "--data-binary", INITIALIZE, &gw.url()],
    );
    assert_eq!(r.exit, Some(60), "{}", r.stderr);
    assert_eq!(r.status, 0);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = format!("http://127.0.0.1:{}/mcp", gw.port);
    let r = curl(
        gw.dir.path(),
        &["-H", &auth, "--data-binary", INITIALIZE, &plain],
    );
    assert_ne!(r.exit, Some(0), "plain HTTP must fail: {}", r.body);
    assert_eq!(r.status, 0, "no HTTP status over plain HTTP: {}", r.body);
    let mut tcp = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"GET /.well-known/oauth-protected-resource HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP must not be answered: {:?}",
        String::from_utf8_lossy(&answer)
    );

    // Nothing reached the upstream, and the listener still serves good clients.
    let r = post(&gw, &gw.url(), &[], &alice, None, INITIALIZE);
    assert_eq!(r.status, 200, "{} {}", r.body, r.stderr);
    assert!(r.header("mcp-session-id").is_some());
}

/// A plain-HTTP gateway whose upstream is `upstream` (an MCP URL), reached with `token` as the
/// gateway's own credential, with `env` added; `alice` has `role` there. Its directory has a PKI
/// of its own, unrelated to the upstream's.
fn serve_in_front_of(upstream: &str, token: &str, role: &str, env: &[(&str, &str)]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let config = dir.path().join("gw.toml");
    let text = config_text(&format!("public_url = \"http://127.0.0.1:{port}/mcp\""));
    let (head, _) = text.split_once("[upstream]").unwrap();
    let head = head.replace(r#"roles = ["user"]"#, &format!(r#"roles = ["{role}"]"#));
    std::fs::write(
        &config,
        format!("{head}[upstream]\nurl = \"{upstream}\"\nbearer_token_env = \"UPSTREAM_TOKEN\"\n"),
    )
    .unwrap();
    let mut env = env.to_vec();
    env.push(("UPSTREAM_TOKEN", token));
    spawn_served(dir, pki, port, config, &env)
}

/// `tools/call echo` through `front` (plain HTTP) as `alice`, as a 2026-07-28 request: one POST,
/// no session.
fn call_echo(front: &Served, message: &str) -> Curl {
    let alice = front.token("alice");
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{message}"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    );
    let routing = [
        "-H",
        "MCP-Protocol-Version: 2026-07-28",
        "-H",
        "Mcp-Method: tools/call",
        "-H",
        "Mcp-Name: echo",
    ];
    let url = format!("http://127.0.0.1:{}/mcp", front.port);
    post(front, &url, &routing, &alice, None, &body)
}

#[test]
fn an_https_upstream_is_used_only_when_its_certificate_is_trusted() {
    // The upstream: a TLS gateway in front of the demo server, which wants its own token.
    let upstream = serve_tls();
    let credential = upstream.token("alice");

    // Trusting the upstream's CA (SSL_CERT_FILE replaces the system's roots), the call goes
    // through both gateways.
    let ca = upstream.pki.ca.to_str().unwrap().to_owned();
    // `admin` grants every tool: the call does not wait on the upstream's tool annotations.
    let front = serve_in_front_of(
        &upstream.url(),
        &credential,
        "admin",
        &[("SSL_CERT_FILE", &ca)],
    );
    let r = call_echo(&front, "through two gateways");
    assert_eq!(r.exit, Some(0), "{}", r.stderr);
    assert_eq!(r.status, 200, "{} {:?}", r.body, front.log());
    assert!(r.body.contains("through two gateways"), "{}", r.body);
    drop(front);

    // Trusting only another CA, the upstream's certificate is refused: no request reaches it,
    // and the client gets -31502 with a 502.
    let other = tempfile::tempdir().unwrap();
    let other_ca = make_pki(other.path()).ca;
    let front = serve_in_front_of(
        &upstream.url(),
        &credential,
        "admin",
        &[("SSL_CERT_FILE", other_ca.to_str().unwrap())],
    );
    let r = call_echo(&front, "must not arrive");
    assert_eq!(r.status, 502, "{} {:?}", r.body, front.log());
    assert_eq!(r.json()["error"]["code"], -31502, "{}", r.body);
    assert!(!r.body.contains("must not arrive"), "{}", r.body);
    let log = front.log();
    assert!(
        log.iter()
            .any(|l| l.contains("upstream request failed") && l.contains("certificate")),
        "{log:?}"
    );
    drop(front);

    // A `user` may call tools whose annotations say read-only, and these could not be read: the
    // call is denied, and the audit line says why.
    let front = serve_in_front_of(
        &upstream.url(),
        &credential,
        "user",
        &[("SSL_CERT_FILE", other_ca.to_str().unwrap())],
    );
    let r = call_echo(&front, "must not arrive either");
    assert_eq!(r.status, 403, "{} {:?}", r.body, front.log());
    assert_eq!(r.json()["error"]["code"], -31003, "{}", r.body);
    let log = front.log();
    let decision = log
        .iter()
        .find(|l| l.contains("\"event\":\"decision\"") && l.contains("\"target\":\"echo\""))
        .unwrap_or_else(|| panic!("no audit line for the call: {log:?}"));
    let line: Value = serde_json::from_str(decision).unwrap();
    assert_eq!(line["outcome"], "deny", "{decision}");
    assert_eq!(
        line["unknown"][0]["attribute"], "tool.annotations",
        "{decision}"
    );
    assert!(
        line["unknown"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("tools/list could not be read"),
        "{decision}"
    );

    // The upstream never authorized a call: its audit (stderr) has no decision on `echo` beyond
    // the first front's.
    let decisions = upstream
        .log()
        .iter()
        .filter(|l| l.contains("\"decision\"") && l.contains("\"echo\""))
        .count();
    assert_eq!(decisions, 1, "{:?}", upstream.log());
}

/// Runs `mcp-guard ARGS --config CONFIG` to its end (bounded), with its stderr.
fn run_to_end(args: &[&str], config: &Path) -> (ExitStatus, String) {
    let mut child = Command::new(EXE)
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`mcp-guard {args:?}` did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err)
}

#[test]
fn a_missing_certificate_file_stops_serve_with_exit_3_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let missing = dir.path().join("no-such-cert.pem");
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        config_text(&format!(
            "public_url = \"https://127.0.0.1:{port}/mcp\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
            missing.display(),
            pki.key.display()
        )),
    )
    .unwrap();
    let (status, err) = run_to_end(&["serve"], &config);
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("TLS certificate"), "{err}");
    assert!(
        !err.contains("mcp-guard listening"),
        "it never listened: {err}"
    );
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "the port was left free"
    );
}

#[test]
fn a_certificate_and_key_that_do_not_match_stop_serve_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let other = dir.path().join("other.key");
    std::fs::write(&other, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        config_text(&format!(
            "public_url = \"https://127.0.0.1:{}/mcp\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
            free_port(),
            pki.cert.display(),
            other.display()
        )),
    )
    .unwrap();
    let (status, err) = run_to_end(&["serve"], &config);
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("do not form a usable identity"), "{err}");

    // A key file holding no key is named too.
    std::fs::write(&other, "not a key\n").unwrap();
    let (status, err) = run_to_end(&["serve"], &config);
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains(&other.display().to_string()), "{err}");
}

#[test]
fn a_certificate_without_its_key_is_a_config_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let config = dir.path().join("gw.toml");
    let text = config_text(&format!(
        "public_url = \"https://127.0.0.1:{}/mcp\"\ntls_cert_file = \"{}\"",
        free_port(),
        pki.cert.display()
    ));
    std::fs::write(&config, &text).unwrap();
    let (line, column) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| {
            l.starts_with("tls_cert_file")
                .then(|| (i + 1, l.find('"').unwrap() + 1))
        })
        .unwrap();
    let at = format!("{}:{line}:{column}:", config.display());
    for args in [&["config", "check"][..], &["serve"][..]] {
        let (status, err) = run_to_end(args, &config);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&at), "{args:?} names {at}: {err}");
        assert!(err.contains("tls_key_file"), "{args:?}: {err}");
        assert!(!err.contains("mcp-guard listening"), "{args:?}: {err}");
    }
}

#[test]
fn config_check_reads_the_tls_files_as_serve_would() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let missing = dir.path().join("no-such-cert.pem");
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        config_text(&format!(
            "public_url = \"https://127.0.0.1:{}/mcp\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
            free_port(),
            missing.display(),
            pki.key.display()
        )),
    )
    .unwrap();
    let (status, err) = run_to_end(&["config", "check"], &config);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
}
