//! Audit events (DESIGN.md section 7): one JSON object per line. Never a token, secret, key or
//! tool argument value; a [`crate::Fingerprint`] where correlation is needed.

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;

/// One audit event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// RFC 3339 UTC time with milliseconds.
    pub time: String,
    /// What happened: `token_issued`, `token_refreshed`, `refresh_reuse`, `token_revoked`,
    /// `authn_failed`, `decision`, ...
    pub event: &'static str,
    /// The principal's issuer (absent for this gateway's own tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The principal's subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The OAuth client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// A token's `jti`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// A refresh family id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// A short fingerprint of the credential involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// `allow`/`deny`, `ok`/`fail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// Why, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The kind of reason, stable for counting (`role_grant`, `no_grant`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_kind: Option<&'static str>,
    /// How the principal authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<&'static str>,
    /// The JSON-RPC method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The tool, prompt or resource asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The permission checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// The JSON-RPC request id, as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The first characters of the session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// List results: items shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shown: Option<usize>,
    /// List results: items hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<usize>,
    /// Attributes that were unknown while deciding, and why (DESIGN.md section 6).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<UnknownAttribute>,
}

/// An attribute a decision could not read: its path, why, and the policy that read it. Never its
/// value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UnknownAttribute {
    /// The path, e.g. `hr.level`.
    pub attribute: String,
    /// Why it was unknown, e.g. `provider failed: answered HTTP 503`.
    pub reason: String,
    /// The policy whose condition read it.
    pub policy: String,
}

impl From<&mcp_guard_core::UnknownAttribute> for UnknownAttribute {
    fn from(u: &mcp_guard_core::UnknownAttribute) -> Self {
        UnknownAttribute {
            attribute: u.path.clone(),
            reason: u.reason.to_string(),
            policy: u.policy.clone(),
        }
    }
}

/// Where audit events go.
pub trait AuditSink: Send + Sync {
    /// Records one event; failures to write are logged, never raised into the request path.
    fn record(&self, event: &AuditEvent);
}

/// Writes one JSON line per event.
pub struct JsonLines<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> JsonLines<W> {
    /// A sink writing to `out` (a file, stdout).
    pub fn new(out: W) -> Self {
        JsonLines {
            out: Mutex::new(out),
        }
    }
}

impl<W: Write + Send> AuditSink for JsonLines<W> {
    fn record(&self, event: &AuditEvent) {
        // Room for a typical line up front.
        let mut line = Vec::with_capacity(512);
        event.write_json(&mut line);
        line.push(b'\n');
        // Logged after the lock is released: nothing that can fail runs while it is held.
        let written = {
            // A panic elsewhere while holding the lock leaves the writer usable: keep auditing.
            let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
            out.write_all(&line).and_then(|()| out.flush())
        };
        if let Err(e) = written {
            tracing::warn!(target: "mcp_guard::audit", error = %e, "audit write failed");
        }
    }
}

/// An append-only file that is renamed to `<path>.1` (older ones shifting to `.2` ... `.keep`,
/// the oldest dropped) before a line would take it past `max_bytes`.
pub struct RotatingFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    size: u64,
    max_bytes: u64,
    keep: usize,
    at_line_start: bool,
}

impl RotatingFile {
    /// Opens (or creates) `path` for appending, owner-only.
    pub fn open(path: &std::path::Path, max_bytes: u64, keep: usize) -> std::io::Result<Self> {
        let file = Self::open_file(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            file,
            size,
            max_bytes: max_bytes.max(1),
            keep,
            at_line_start: true,
        })
    }

    fn open_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
    }

    fn numbered(&self, n: usize) -> std::path::PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        name.into()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                let from = self.numbered(n);
                if from.exists() {
                    std::fs::rename(&from, self.numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = Self::open_file(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Only between lines, so a line is never split across files.
        if self.at_line_start && self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        if n > 0 {
            self.at_line_start = buf[n - 1] == b'\n';
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Writes each event as one `info` event on the `mcp_guard::audit` tracing target, its JSON
/// line in the `audit` field: the default of the [`crate::layer::AuthLayer`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingSink;

impl AuditSink for TracingSink {
    fn record(&self, event: &AuditEvent) {
        let mut line = Vec::with_capacity(512);
        event.write_json(&mut line);
        tracing::info!(target: "mcp_guard::audit", audit = %String::from_utf8_lossy(&line), "audit");
    }
}

/// The current wall-clock time in Unix milliseconds.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl AuditEvent {
    /// Appends the event as one JSON object, byte for byte what `serde_json` writes for it (a test
    /// holds the two together). Written by hand because it runs for every request: serde's
    /// field-by-field serializer took about 5,000 instructions per line.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":");
        json_string(out, &self.time);
        out.extend_from_slice(b",\"event\":");
        json_string(out, self.event);
        let texts: [(&[u8], Option<&str>); 16] = [
            (b",\"issuer\":", self.issuer.as_deref()),
            (b",\"subject\":", self.subject.as_deref()),
            (b",\"client_id\":", self.client_id.as_deref()),
            (b",\"jti\":", self.jti.as_deref()),
            (b",\"family\":", self.family.as_deref()),
            (b",\"credential\":", self.credential.as_deref()),
            (b",\"outcome\":", self.outcome),
            (b",\"reason\":", self.reason.as_deref()),
            (b",\"reason_kind\":", self.reason_kind),
            (b",\"auth_method\":", self.auth_method),
            (b",\"method\":", self.method.as_deref()),
            (b",\"target\":", self.target.as_deref()),
            (b",\"permission\":", self.permission.as_deref()),
            (b",\"request_id\":", self.request_id.as_deref()),
            (b",\"session\":", self.session.as_deref()),
            (b",\"client_ip\":", self.client_ip.as_deref()),
        ];
        for (key, value) in texts {
            if let Some(v) = value {
                out.extend_from_slice(key);
                json_string(out, v);
            }
        }
        for (key, count) in [
            (&b",\"shown\":"[..], self.shown),
            (b",\"hidden\":", self.hidden),
        ] {
            if let Some(n) = count {
                out.extend_from_slice(key);
                out.extend_from_slice(n.to_string().as_bytes());
            }
        }
        if !self.unknown.is_empty() {
            out.extend_from_slice(b",\"unknown\":[");
            for (i, u) in self.unknown.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"attribute\":");
                json_string(out, &u.attribute);
                out.extend_from_slice(b",\"reason\":");
                json_string(out, &u.reason);
                out.extend_from_slice(b",\"policy\":");
                json_string(out, &u.policy);
                out.push(b'}');
            }
            out.push(b']');
        }
        out.push(b'}');
    }

    /// An event named `event`, stamped now.
    pub fn now(event: &'static str) -> Self {
        AuditEvent {
            time: rfc3339_millis(now_millis()),
            event,
            ..AuditEvent::default()
        }
    }
}

/// Appends `text` as a JSON string, escaped as `serde_json` escapes it: `"` and `\\`, the short
/// forms `\b \f \n \r \t`, `\u00XX` (lowercase hex) for other control characters, and
/// everything else (non-ASCII included) as it is.
fn json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let mut rest = text.as_bytes();
    // Most audit text needs no escape: copy up to each byte that does, found eight at a time.
    while let Some(at) = crate::token::scan::string_end(rest) {
        let (plain, tail) = rest.split_at(at);
        out.extend_from_slice(plain);
        let Some((&byte, after)) = tail.split_first() else {
            break;
        };
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            control => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(control >> 4)]);
                out.push(HEX[usize::from(control & 0xf)]);
            }
        }
        rest = after;
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Keeps events in memory (tests, `--json` summaries).
#[derive(Default)]
pub struct MemorySink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }
    /// The events so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl AuditSink for MemorySink {
    fn record(&self, event: &AuditEvent) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event.clone());
        }
    }
}

/// Formats Unix milliseconds as RFC 3339 UTC (`2026-11-26T03:56:00.000Z`).
pub fn rfc3339_millis(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // Digit by digit rather than through `format!`: every audit line has a time, and the
    // formatting machinery cost ten times as much (callgrind: about 2,800 instructions).
    let mut out = String::with_capacity(24);
    if (0..=9999).contains(&y) {
        push_digits(&mut out, y, 4);
    } else {
        // No clock this runs with gets here; the year is still written in full.
        out.push_str(&y.to_string());
    }
    for (separator, value, width) in [
        ('-', m, 2),
        ('-', d, 2),
        ('T', rem / 3600, 2),
        (':', (rem % 3600) / 60, 2),
        (':', rem % 60, 2),
        ('.', ms, 3),
    ] {
        out.push(separator);
        push_digits(&mut out, value, width);
    }
    out.push('Z');
    out
}

/// Appends the last `width` (at most 4) decimal digits of `n` (which is not negative),
/// zero-padded.
fn push_digits(out: &mut String, mut n: i64, width: usize) {
    let mut digits = [b'0'; 4];
    // From the right, dividing by the constant 10 (a multiply), not by a computed power of ten.
    for slot in digits.iter_mut().take(width).rev() {
        *slot = b"0123456789"[usize::try_from(n % 10).unwrap_or(0)];
        n /= 10;
    }
    for &digit in digits.iter().take(width) {
        out.push(char::from(digit));
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails every write, as a full disk does, and counts the attempts.
    struct Full(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(std::io::Error::from_raw_os_error(28))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_or_poisoned_writer_never_stops_later_lines() {
        let tries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sink = std::sync::Arc::new(JsonLines::new(Full(tries.clone())));
        let e = AuditEvent {
            event: "decision",
            ..AuditEvent::default()
        };
        sink.record(&e);
        // A panic while the lock is held (elsewhere) poisons it; later lines are still tried.
        let poisoner = sink.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.out.lock();
            panic!("poison the sink's lock");
        })
        .join();
        assert!(sink.out.is_poisoned());
        sink.record(&e);
        assert_eq!(tries.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_795_665_360_123),
            "2026-11-26T03:56:00.123Z"
        );
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        // Every field at its widest and narrowest, against the `format!` it replaced.
        for ms in [
            0_i64,
            1,
            59_999,
            86_399_999,
            253_402_300_799_999,
            1_795_665_360_123,
            4_102_444_800_000,
        ] {
            let secs = ms / 1000;
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let rem = secs.rem_euclid(86_400);
            let expected = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                rem / 3600,
                (rem % 3600) / 60,
                rem % 60,
                ms % 1000
            );
            assert_eq!(rfc3339_millis(ms), expected, "{ms}");
        }
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            rfc3339_millis(253_402_300_799_999),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            rfc3339_millis(253_402_300_800_000),
            "10000-01-01T00:00:00.000Z"
        );
    }

    /// The hand-written line is byte for byte serde_json's, for every field present or absent and
    /// every kind of character.
    #[test]
    fn lines_are_what_serde_json_writes() {
        let texts = [
            String::new(),
            "plain".to_owned(),
            "quote \" and back\\slash".to_owned(),
            "\u{8}\u{c}\n\r\t".to_owned(),
            (0u8..0x20).map(char::from).collect::<String>(),
            "\u{7f} é ✓ 🦀 \u{2028}".to_owned(),
            // Escapes after runs that end inside and past an eight-byte word (the line before has
            // one at every offset).
            format!(
                "{}\"{}\\{}\u{1}",
                "a".repeat(7),
                "b".repeat(9),
                "c".repeat(16)
            ),
        ];
        let mut events = vec![AuditEvent::default()];
        for (i, t) in texts.iter().enumerate() {
            let some = |k: usize| (i + k).is_multiple_of(2).then(|| t.clone());
            events.push(AuditEvent {
                time: t.clone(),
                event: "decision",
                issuer: some(0),
                subject: some(1),
                client_id: some(0),
                jti: some(1),
                family: some(0),
                credential: some(1),
                outcome: Some("deny"),
                reason: Some(t.clone()),
                reason_kind: i.is_multiple_of(2).then_some("no_grant"),
                auth_method: (i % 2 == 1).then_some("own_token"),
                method: some(0),
                target: some(1),
                permission: some(0),
                request_id: some(1),
                session: some(0),
                client_ip: some(1),
                shown: i.is_multiple_of(3).then_some(i * 1000),
                hidden: (i % 3 != 2).then_some(usize::MAX - i),
                unknown: (0..i % 3)
                    .map(|n| UnknownAttribute {
                        attribute: format!("{t}.{n}"),
                        reason: t.clone(),
                        policy: format!("p{n}"),
                    })
                    .collect(),
            });
        }
        for e in &events {
            let mut ours = Vec::new();
            e.write_json(&mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(e).unwrap()
            );
        }
    }

    #[test]
    fn one_json_line_per_event() {
        let sink = JsonLines::new(Vec::new());
        sink.record(&AuditEvent {
            time: rfc3339_millis(0),
            event: "token_revoked",
            jti: Some("j1".into()),
            ..Default::default()
        });
        sink.record(&AuditEvent {
            event: "x",
            ..Default::default()
        });
        let out = String::from_utf8(sink.out.into_inner().unwrap()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["event"], "token_revoked");
        assert_eq!(v["jti"], "j1");
        assert!(v.get("subject").is_none());
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;

    #[test]
    fn files_rotate_between_lines_and_keep_a_bounded_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let sink = JsonLines::new(RotatingFile::open(&path, 300, 2).unwrap());
        for i in 0..20 {
            sink.record(&AuditEvent {
                time: format!("t{i}"),
                event: "decision",
                reason: Some("x".repeat(60)),
                ..AuditEvent::default()
            });
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        let current = read(&path);
        let one = read(&dir.path().join("audit.jsonl.1"));
        let two = read(&dir.path().join("audit.jsonl.2"));
        assert!(
            !dir.path().join("audit.jsonl.3").exists(),
            "only `keep` old files"
        );
        for text in [&current, &one, &two] {
            assert!(!text.is_empty());
            assert!(text.len() <= 300, "{}", text.len());
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line).expect("whole lines only");
            }
        }
        assert!(
            current.contains("\"time\":\"t19\""),
            "the newest line is in the current file"
        );
    }
}
