//! One session's connection to the upstream MCP server (DESIGN.md section 9): a stdio child
//! process, or a session on a streamable-HTTP server ([`super::upstream_http`]).
//!
//! Either way, messages go out as permitted bytes and come back through [`Link::dispatch`]:
//! responses complete the request that waits for them, anything else is handed to the session as
//! a server-to-client message.
//!
//! A stdio child gets an explicit environment, runs in its own process group (so killing it also
//! ends what it started), and is reaped when killed or when it exits. Its stdout is read one line
//! per message; its stderr goes to the log.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use bytes::Bytes;
use mcp_guard_core::RequestId;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

use super::upstream_http::{HttpConn, HttpUpstreamClient};
use crate::config::{StdioUpstream, resolve_command};

/// The longest line read from a child: a larger message kills it (it is not speaking MCP).
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// A message the upstream sent on its own: a request or a notification for the client.
#[derive(Clone, Debug)]
pub struct ServerMessage {
    /// The line as the upstream wrote it.
    pub raw: Bytes,
    /// The same, parsed.
    pub value: Value,
}

/// Receives the upstream's own messages.
pub type OnServerMessage = Box<dyn Fn(ServerMessage) + Send + Sync>;

/// Why a message could not be exchanged with the upstream.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The child is gone (or could not be started): -31502.
    #[error("the upstream process is not running")]
    Dead,
    /// A request with this id is already waiting for its answer: -32600.
    #[error("a request with this id is already in flight")]
    InFlight,
}

/// What the sender already knows of an outgoing message, so that an HTTP upstream does not
/// parse it again: its method and id, exactly as they are in its bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outgoing<'a> {
    /// The `method` member, if any.
    pub method: Option<&'a str>,
    /// The `id` member, if any.
    pub id: Option<&'a RequestId>,
}

/// How a session reaches the upstream.
pub enum Connector {
    /// Start a child per session; the counter holds how many are alive.
    Stdio(Box<StdioUpstream>, Arc<AtomicUsize>),
    /// Open a session on a streamable-HTTP server.
    Http(Arc<HttpUpstreamClient>),
}

impl Connector {
    /// A new connection for one session.
    pub fn connect(&self, on_message: OnServerMessage) -> std::io::Result<Arc<Link>> {
        match self {
            Connector::Stdio(spec, children) => Link::spawn(spec, on_message, children.clone()),
            Connector::Http(client) => Ok(HttpConn::open(client.clone(), on_message)),
        }
    }
}

/// A running connection and the tasks around it.
pub struct Link {
    pending: Mutex<HashMap<RequestId, oneshot::Sender<Bytes>>>,
    alive: AtomicBool,
    on_message: OnServerMessage,
    transport: Transport,
}

enum Transport {
    Stdio {
        writer: mpsc::Sender<Bytes>,
        kill: Mutex<Option<oneshot::Sender<()>>>,
    },
    Http(HttpConn),
}

impl Link {
    /// A link over an HTTP upstream session.
    pub(super) fn over_http(conn: HttpConn, on_message: OnServerMessage) -> Arc<Link> {
        Arc::new(Link {
            pending: Mutex::new(HashMap::new()),
            alive: AtomicBool::new(true),
            on_message,
            transport: Transport::Http(conn),
        })
    }

    /// Starts a child. `children` counts live children and is decremented when it is reaped.
    fn spawn(
        spec: &StdioUpstream,
        on_message: OnServerMessage,
        children: Arc<AtomicUsize>,
    ) -> std::io::Result<Arc<Link>> {
        let mut cmd = Command::new(resolve_command(&spec.command));
        cmd.args(&spec.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        for name in &spec.inherit_env {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
        for (child_name, gateway_name) in &spec.env_from {
            if let Some(v) = std::env::var_os(gateway_name) {
                cmd.env(child_name, v);
            }
        }
        cmd.envs(&spec.env);
        if let Some(dir) = &spec.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("child pipes missing"));
        };
        children.fetch_add(1, Ordering::SeqCst);
        let (writer, mut lines) = mpsc::channel::<Bytes>(256);
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let link = Arc::new(Link {
            pending: Mutex::new(HashMap::new()),
            alive: AtomicBool::new(true),
            on_message,
            transport: Transport::Stdio {
                writer,
                kill: Mutex::new(Some(kill_tx)),
            },
        });
        tracing::info!(pid, command = %spec.command, "upstream process started");

        tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(line) = lines.recv().await {
                if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            let mut err = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = err.next_line().await {
                tracing::info!(target: "mcp_guard::upstream", pid, "{line}");
            }
        });
        let reader = link.clone();
        tokio::spawn(async move {
            let mut out = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                match read_line(&mut out, &mut line).await {
                    Ok(true) => reader.dispatch(&line),
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(pid, "upstream output refused: {e}; stopping it");
                        reader.kill();
                        break;
                    }
                }
            }
            reader.close();
        });
        let watcher = link.clone();
        tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    tracing::info!(pid, ?status, "upstream process exited");
                    // What it started in its group (a server behind `sh -c` or `npx`) goes too.
                    kill_group(pid);
                }
                _ = kill_rx => {
                    kill_group(pid);
                    let _ = child.start_kill();
                    let status = child.wait().await;
                    tracing::info!(pid, ?status, "upstream process stopped");
                }
            }
            watcher.close();
            children.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(link)
    }

    /// Whether this is a stdio child (where a cancelled request must be told in a message).
    pub fn is_stdio(&self) -> bool {
        matches!(self.transport, Transport::Stdio { .. })
    }

    /// Whether the child is still running (the HTTP session still open).
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Registers a request id that will wait for its response.
    pub fn expect(&self, id: RequestId) -> Result<oneshot::Receiver<Bytes>, LinkError> {
        if !self.is_alive() {
            return Err(LinkError::Dead);
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.contains_key(&id) {
            return Err(LinkError::InFlight);
        }
        let (tx, rx) = oneshot::channel();
        pending.insert(id, tx);
        Ok(rx)
    }

    /// Stops waiting for a response (the client went away or the request timed out).
    pub fn forget(&self, id: &RequestId) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .is_some()
    }

    /// Writes one message as exactly one line. The bytes must be one valid JSON value: raw CR
    /// and LF can then only be whitespace between tokens, and are dropped so that a message
    /// spread over lines cannot smuggle a second one past the check.
    pub async fn send(self: &Arc<Self>, json: &[u8]) -> Result<(), LinkError> {
        self.send_routed(json, &HeaderMap::new(), None).await
    }

    /// Like [`Link::send`]; an HTTP upstream also gets `routing` (the 2026-07-28 headers the
    /// gateway checked against the body). `known` is what the caller read from `json` already;
    /// without it an HTTP upstream reads the method and id itself.
    pub async fn send_routed(
        self: &Arc<Self>,
        json: &[u8],
        routing: &HeaderMap,
        known: Option<Outgoing<'_>>,
    ) -> Result<(), LinkError> {
        if !self.is_alive() {
            return Err(LinkError::Dead);
        }
        let mut line = Vec::with_capacity(json.len() + 1);
        if memchr::memchr2(b'\n', b'\r', json).is_none() {
            // The usual case, copied whole rather than byte by byte.
            line.extend_from_slice(json);
        } else {
            line.extend(json.iter().copied().filter(|b| *b != b'\n' && *b != b'\r'));
        }
        match &self.transport {
            Transport::Stdio { writer, .. } => {
                line.push(b'\n');
                writer
                    .send(Bytes::from(line))
                    .await
                    .map_err(|_| LinkError::Dead)
            }
            Transport::Http(conn) => conn.post(self, Bytes::from(line), routing, known).await,
        }
    }

    /// Kills the child (and its process group), or ends the HTTP session; pending requests fail.
    pub fn kill(&self) {
        match &self.transport {
            Transport::Stdio { kill, .. } => {
                if let Some(tx) = kill.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    let _ = tx.send(());
                }
            }
            Transport::Http(conn) => {
                if self.alive.load(Ordering::SeqCst) {
                    conn.end();
                }
                self.close();
            }
        }
    }

    /// Fails the one request waiting for `id` (its exchange failed before an answer came).
    pub(super) fn fail(&self, id: &RequestId) {
        self.forget(id);
    }

    /// Marks the link dead and fails every waiting request.
    pub(super) fn close(&self) {
        self.alive.store(false, Ordering::SeqCst);
        // Dropping the senders wakes every waiter with an error: -31502 for them.
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Routes one message from the upstream.
    pub(super) fn dispatch(&self, line: &[u8]) {
        let text = line.trim_ascii();
        if text.is_empty() {
            return;
        }
        if let Some(id) = response_id(text) {
            let waiter = self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            match waiter {
                Some(tx) => {
                    let _ = tx.send(Bytes::copy_from_slice(text));
                }
                None => tracing::debug!("response to no pending request dropped"),
            }
            return;
        }
        let value: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("upstream sent a message that is not JSON: {e}");
                return;
            }
        };
        if let Value::Array(items) = value {
            // A JSON body may answer a batch; each element is routed alone.
            for item in items {
                self.dispatch(item.to_string().as_bytes());
            }
            return;
        }
        let is_response = value.get("method").is_none()
            && (value.get("result").is_some() || value.get("error").is_some());
        if is_response {
            let waiter = value
                .get("id")
                .and_then(RequestId::from_value)
                .and_then(|id| {
                    self.pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id)
                });
            match waiter {
                Some(tx) => {
                    let _ = tx.send(Bytes::copy_from_slice(text));
                }
                None => tracing::debug!("response to no pending request dropped"),
            }
            return;
        }
        if value.get("method").and_then(Value::as_str).is_some() {
            (self.on_message)(ServerMessage {
                raw: Bytes::copy_from_slice(text),
                value,
            });
        } else {
            tracing::warn!("upstream sent a message that is not JSON-RPC");
        }
    }
}

/// The id of a message that is plainly a response (an object with `result` or `error`, an `id`,
/// no `method`, no repeated key), read without building its tree: answers are most of what an
/// upstream sends. Anything else is `None` and takes the general path.
fn response_id(text: &[u8]) -> Option<RequestId> {
    use serde_json::value::RawValue;
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
        #[serde(borrow)]
        method: Option<&'a RawValue>,
        #[serde(borrow)]
        result: Option<&'a RawValue>,
        #[serde(borrow)]
        error: Option<&'a RawValue>,
    }
    if text.first() != Some(&b'{') {
        return None;
    }
    let probe: Probe<'_> = serde_json::from_slice(text).ok()?;
    if probe.method.is_some() || (probe.result.is_none() && probe.error.is_none()) {
        return None;
    }
    let id: Value = serde_json::from_str(probe.id?.get()).ok()?;
    RequestId::from_value(&id)
}

impl Drop for Link {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads one line (without its `\n`) into `buf`; `false` at end of input. Bounded by
/// [`MAX_LINE_BYTES`].
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    buf.clear();
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(!buf.is_empty());
        }
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let end = if done { take - 1 } else { take };
        if buf.len() + end > MAX_LINE_BYTES {
            return Err(std::io::Error::other("line longer than the limit"));
        }
        buf.extend_from_slice(&chunk[..end]);
        r.consume(take);
        if done {
            return Ok(true);
        }
    }
}

/// Ends the child's process group, so servers started through a shell or `npx` stop too.
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        let data: &[u8] = b"{\"a\":1}\n\n{\"b\":2}";
        let mut r = BufReader::new(data);
        let mut buf = Vec::new();
        assert!(read_line(&mut r, &mut buf).await.unwrap());
        assert_eq!(buf, b"{\"a\":1}");
        assert!(read_line(&mut r, &mut buf).await.unwrap());
        assert_eq!(buf, b"");
        assert!(read_line(&mut r, &mut buf).await.unwrap());
        assert_eq!(buf, b"{\"b\":2}");
        assert!(!read_line(&mut r, &mut buf).await.unwrap());
    }

    /// Messages queued faster than a child reads them reach it whole, one line each, and every
    /// answer reaches the request of its id.
    #[tokio::test]
    async fn queued_messages_reach_the_child_whole() {
        let spec = StdioUpstream {
            command: "cat".into(),
            args: Vec::new(),
            cwd: None,
            env: Default::default(),
            env_from: Default::default(),
            inherit_env: vec!["PATH".into()],
            max_children: 1,
            pool_per_principal: 1,
        };
        let link = Link::spawn(&spec, Box::new(|_| {}), Arc::new(AtomicUsize::new(0))).unwrap();
        // `cat` sends each line back: a response to the request of its id.
        let message = |n: i64| {
            let pad = if n < 100 {
                String::new()
            } else {
                "x".repeat(3000)
            };
            format!(r#"{{"jsonrpc":"2.0","id":{n},"result":{{"pad":"{pad}"}}}}"#)
        };
        let mut waiting = Vec::new();
        for n in 0..200 {
            waiting.push((n, link.expect(RequestId::Number(n)).unwrap()));
        }
        // Queued back to back (the channel has room): small ones, then 3 KB ones.
        for n in 0..200 {
            link.send(message(n).as_bytes()).await.unwrap();
        }
        for (n, answer) in waiting {
            let got = tokio::time::timeout(std::time::Duration::from_secs(10), answer)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got, message(n).as_bytes(), "message {n}");
        }
        link.kill();
    }

    #[test]
    fn only_plain_responses_take_the_fast_path() {
        let id = |t: &str| response_id(t.as_bytes());
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":7,"result":{"a":[1,2]}}"#),
            Some(RequestId::Number(7))
        );
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":"x","error":{"code":1,"message":"m"}}"#),
            Some(RequestId::String("x".into()))
        );
        // Requests and notifications from the server, odd shapes and repeated keys: general path.
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#),
            None
        );
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#),
            None
        );
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":1}"#), None);
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":1,"id":2,"result":{}}"#), None);
        assert_eq!(id(r#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#), None);
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":null,"error":{}}"#), None);
    }
}
