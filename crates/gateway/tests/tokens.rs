//! Token commands through the real binary, across processes sharing one SQLite file.

#![expect(clippy::expect_used, reason = "test helpers fail the test loudly")]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("JWT_SECRET")
        .output()
        .expect("the binary runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("c.toml"),
        "[server]\npublic_url = \"https://gw.example/mcp\"\n[store]\npath = \"state.db\"\n[audit]\npath = \"audit.jsonl\"\n",
    )
    .expect("write config");
    dir
}

#[test]
fn a_revoked_token_fails_in_the_next_process_and_keys_survive() {
    let dir = setup();
    let d = dir.path();
    let o = run(d, &["keys", "generate", "--config", "c.toml"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let kid = out(&o).split(' ').next().unwrap_or_default().to_owned();

    let o = run(
        d,
        &[
            "token", "issue", "--config", "c.toml", "--sub", "alice", "--role", "user",
        ],
    );
    assert_eq!(code(&o), 0);
    let token = out(&o);
    assert_eq!(token.split('.').count(), 3);

    // Another process verifies it with the key it finds in the store.
    let o = run(
        d,
        &["token", "verify", "--config", "c.toml", "--json", &token],
    );
    assert_eq!(code(&o), 0, "{}", out(&o));
    let v: Value = serde_json::from_str(&out(&o)).expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["claims"]["iss"], "https://gw.example");
    assert_eq!(v["claims"]["aud"], "https://gw.example/mcp");
    assert_eq!(v["claims"]["roles"][0], "user");

    let o = run(d, &["token", "revoke", "--config", "c.toml", &token]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));

    let o = run(
        d,
        &["token", "verify", "--config", "c.toml", "--json", &token],
    );
    assert_eq!(code(&o), 1);
    let v: Value = serde_json::from_str(&out(&o)).expect("json");
    assert_eq!(
        (v["valid"].as_bool(), v["reason_kind"].as_str()),
        (Some(false), Some("revoked"))
    );

    // The signing key survived: the same kid is still the signing key.
    let o = run(d, &["keys", "list", "--config", "c.toml", "--json"]);
    let v: Value = serde_json::from_str(&out(&o)).expect("json");
    assert_eq!(v["keys"][0]["kid"], kid.as_str());
    assert_eq!(v["keys"][0]["signing"], true);

    // The audit log has the issuance and the revocation, and never the token.
    let audit = std::fs::read_to_string(d.join("audit.jsonl")).expect("audit log");
    assert!(audit.contains("\"event\":\"token_issued\""), "{audit}");
    assert!(audit.contains("\"event\":\"token_revoked\""), "{audit}");
    for segment in token.split('.') {
        assert!(
            !audit.contains(segment),
            "a token segment reached the audit log"
        );
    }
}

#[test]
fn rotation_keeps_old_tokens_valid_and_new_tokens_use_the_new_key() {
    let dir = setup();
    let d = dir.path();
    let old = out(&run(
        d,
        &["token", "issue", "--config", "c.toml", "--sub", "a"],
    ));
    let o = run(d, &["keys", "rotate", "--config", "c.toml"]);
    assert_eq!(code(&o), 0);
    let new_kid = out(&o).split(' ').next().unwrap_or_default().to_owned();
    assert_eq!(
        code(&run(d, &["token", "verify", "--config", "c.toml", &old])),
        0,
        "old key still published"
    );
    let new = out(&run(
        d,
        &["token", "issue", "--config", "c.toml", "--sub", "b"],
    ));
    let header = new.split('.').next().unwrap_or_default();
    let header: Value = serde_json::from_slice(&base64_url(header)).expect("header json");
    assert_eq!(header["kid"], new_kid.as_str());
    assert_eq!(header["typ"], "at+jwt");
}

#[test]
fn invalid_tokens_and_refresh_pairs() {
    let dir = setup();
    let d = dir.path();
    let o = run(d, &["token", "verify", "--config", "c.toml", "not.a.token"]);
    assert_eq!(code(&o), 1);
    assert!(out(&o).starts_with("invalid: "), "{}", out(&o));
    let o = run(
        d,
        &[
            "token",
            "issue",
            "--config",
            "c.toml",
            "--sub",
            "svc",
            "--client",
            "c1",
            "--refresh",
            "--ttl",
            "5m",
        ],
    );
    assert_eq!(code(&o), 0);
    let v: Value = serde_json::from_str(&out(&o)).expect("json");
    assert_eq!(v["token_type"], "Bearer");
    assert!(
        v["expires_in"]
            .as_i64()
            .is_some_and(|e| e <= 300 && e > 290)
    );
    let refresh = v["refresh_token"].as_str().expect("refresh token");
    // A refresh token is not accepted as an access token.
    let o = run(
        d,
        &["token", "verify", "--config", "c.toml", "--json", refresh],
    );
    assert_eq!(code(&o), 1);
    assert!(out(&o).contains("refresh_as_access"), "{}", out(&o));
    // Revoking it revokes the family.
    assert_eq!(
        code(&run(d, &["token", "revoke", "--config", "c.toml", refresh])),
        0
    );
    assert!(
        std::fs::read_to_string(d.join("audit.jsonl"))
            .expect("audit")
            .contains("\"family\"")
    );
}

#[test]
fn hs256_needs_a_long_enough_secret() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(
        d.join("hs.toml"),
        "[token]\nalgorithm = \"HS256\"\n[store]\npath = \":memory:\"\n",
    )
    .expect("write");
    let o = run(d, &["token", "issue", "--config", "hs.toml", "--sub", "a"]);
    assert_eq!(code(&o), 3);
    assert!(String::from_utf8_lossy(&o.stderr).contains("`JWT_SECRET` is not set"));
    let o = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args(["token", "issue", "--config", "hs.toml", "--sub", "a"])
        .current_dir(d)
        .env("JWT_SECRET", "short-secret-value")
        .output()
        .expect("runs");
    assert_eq!(code(&o), 3);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("at least 32 are required"), "{err}");
    assert!(
        !err.contains("short-secret-value"),
        "the secret must not be echoed"
    );
}

fn base64_url(s: &str) -> Vec<u8> {
    // A tiny decoder for the test, so it does not depend on the crate it checks.
    let table = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            _ => 63,
        }
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        acc = (acc << 6) | table(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

#[test]
fn config_check_validates_signing_keys() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(d.join("hs.toml"), "[token]\nalgorithm = \"HS256\"\n").expect("write");
    let o = run(d, &["config", "check", "--config", "hs.toml"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("`JWT_SECRET` is not set"));
    std::fs::write(
        d.join("bad.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    std::fs::write(
        d.join("pem.toml"),
        "[token]\nalgorithm = \"ES256\"\nprivate_key_file = \"bad.pem\"\n",
    )
    .expect("write");
    let o = run(d, &["config", "check", "--config", "pem.toml"]);
    assert_eq!(code(&o), 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.pem"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(d.join("rs.toml"), "[token]\nalgorithm = \"RS256\"\n").expect("write");
    let o = run(d, &["config", "check", "--config", "rs.toml"]);
    assert_eq!(code(&o), 2);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("rs.toml:2:13: `RS256` needs `token.private_key_file`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn clients_are_added_with_a_hash_and_the_secret_shown_once() {
    let dir = setup();
    let d = dir.path();
    let o = run(
        d,
        &[
            "client", "add", "--config", "c.toml", "--role", "user", "--scope", "mcp:read", "svc",
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let secret = out(&o);
    assert_eq!(secret.len(), 43);
    let file = std::fs::read_to_string(d.join("c.toml")).expect("config");
    assert!(file.contains("secret_hash = \"$argon2id$"), "{file}");
    assert!(
        !file.contains(&secret),
        "the secret itself is never written"
    );
    let o = run(d, &["client", "list", "--config", "c.toml", "--json"]);
    let v: Value = serde_json::from_str(&out(&o)).expect("json");
    assert_eq!(v["clients"][0]["id"], "svc");
    assert!(!out(&o).contains("argon2"), "list shows no hashes");
    assert_eq!(
        code(&run(d, &["client", "add", "--config", "c.toml", "svc"])),
        2,
        "duplicate id"
    );
    assert_eq!(code(&run(d, &["config", "check", "--config", "c.toml"])), 0);
    assert_eq!(
        code(&run(d, &["client", "remove", "--config", "c.toml", "svc"])),
        0
    );
    let o = run(d, &["client", "list", "--config", "c.toml", "--json"]);
    assert_eq!(out(&o), r#"{"clients":[]}"#);
    assert_eq!(
        code(&run(d, &["client", "remove", "--config", "c.toml", "svc"])),
        2
    );
}

#[test]
fn a_plaintext_client_secret_in_config_is_refused_without_echo() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(
        d.join("p.toml"),
        "[[clients]]\nid = \"svc\"\nsecret_hash = \"hunter2-plaintext\"\n",
    )
    .expect("write");
    let o = run(d, &["config", "check", "--config", "p.toml"]);
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("p.toml:3:15: not an argon2 PHC string (key `clients[0].secret_hash`)"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
