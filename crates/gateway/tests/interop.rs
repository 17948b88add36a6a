//! Interop with third-party JWT libraries (node `jsonwebtoken` 9 and `jose` 6, pinned in
//! `interop/package-lock.json`; `.ci/run` installs them with `npm ci`):
//! tokens they mint verify in mcp-guard, and tokens mcp-guard mints verify in them.
//!
//! These tests need `node` and `interop/node_modules`. Without them they fail, unless
//! `MCP_GUARD_SKIP_INTEROP=1` says to skip on purpose.

#![expect(clippy::expect_used, reason = "test helpers fail the test loudly")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const ISS: &str = "https://gw.example";
const AUD: &str = "https://gw.example/mcp";
const SECRET: &str = "interop-shared-secret-0123456789abcdef";

fn interop_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop");
    if dir.join("node_modules/jose").is_dir() && dir.join("node_modules/jsonwebtoken").is_dir() {
        return Some(dir);
    }
    if std::env::var_os("MCP_GUARD_SKIP_INTEROP").is_some() {
        return None;
    }
    panic!(
        "interop/node_modules is missing: run `npm ci` in interop/ (or set MCP_GUARD_SKIP_INTEROP=1)"
    );
}

fn node(dir: &Path, args: &[&str]) -> Output {
    Command::new("node")
        .args(args)
        .current_dir(dir)
        .env("INTEROP_SECRET", SECRET)
        .output()
        .expect("node runs")
}

fn guard(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args(args)
        .current_dir(dir)
        .env("JWT_SECRET", SECRET)
        .output()
        .expect("mcp-guard runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn config(dir: &Path, name: &str, token: &str) -> String {
    let body = format!(
        "[server]\npublic_url = \"{AUD}\"\n[store]\npath = \"{name}.db\"\n[audit]\npath = \"audit.jsonl\"\n[token]\n{token}\n"
    );
    std::fs::write(dir.join(format!("{name}.toml")), body).expect("write config");
    format!("{name}.toml")
}

fn kid_of(work: &Path, cfg: &str) -> String {
    let o = guard(work, &["keys", "jwks", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let jwks: Value = serde_json::from_slice(&o.stdout).expect("jwks json");
    jwks["keys"][0]["kid"].as_str().expect("a kid").to_owned()
}

#[test]
fn tokens_minted_by_node_libraries_verify_in_mcp_guard() {
    let Some(js) = interop_dir() else { return };
    let work = tempfile::tempdir().expect("temp dir");
    let w = work.path();
    let o = node(&js, &["keys.mjs", w.to_str().expect("utf-8 path")]);
    assert!(o.status.success(), "{}", text(&o));

    for alg in ["ES256", "RS256", "EdDSA"] {
        let pem = w.join(format!("{alg}.pem"));
        let cfg = config(
            w,
            alg,
            &format!("algorithm = \"{alg}\"\nprivate_key_file = \"{alg}.pem\""),
        );
        let kid = kid_of(w, &cfg);
        let library = if alg == "EdDSA" {
            "jose"
        } else {
            "jsonwebtoken"
        };
        let o = node(
            &js,
            &[
                "mint.mjs",
                alg,
                pem.to_str().expect("path"),
                &kid,
                ISS,
                AUD,
                "node-user",
            ],
        );
        assert!(o.status.success(), "{alg}: {}", text(&o));
        let token = String::from_utf8(o.stdout).expect("token");
        let o = guard(w, &["token", "verify", "--config", &cfg, "--json", &token]);
        assert!(
            o.status.success(),
            "{alg} token from {library} refused: {}",
            text(&o)
        );
        let v: Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(v["subject"], "node-user", "{alg}");
        assert_eq!(v["claims"]["permissions"][0], "tools:execute:echo", "{alg}");
        // The same token with one claim changed must fail: the verification is real.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1].replace_range(0..4, "eyJh");
        let forged = parts.join(".");
        if forged != token {
            let o = guard(w, &["token", "verify", "--config", &cfg, &forged]);
            assert_eq!(
                o.status.code(),
                Some(1),
                "{alg}: a tampered token was accepted"
            );
        }
    }

    // HS256 with the seed's shared secret.
    let cfg = config(
        w,
        "hs",
        "algorithm = \"HS256\"\nsecret_env = \"JWT_SECRET\"",
    );
    let o = node(
        &js,
        &[
            "mint.mjs",
            "HS256",
            "INTEROP_SECRET",
            "hs256",
            ISS,
            AUD,
            "node-hs",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8(o.stdout).expect("token");
    let o = guard(w, &["token", "verify", "--config", &cfg, "--json", &token]);
    assert!(
        o.status.success(),
        "HS256 from jsonwebtoken refused: {}",
        text(&o)
    );
}

/// Tokens of an external issuer configured with `[[issuers]]`: a JWKS file (jose, EdDSA) and a
/// public key file (jsonwebtoken, RS256 and ES256); HMAC with the published key is refused.
#[test]
fn external_issuers_from_jwks_and_public_key_files() {
    let Some(js) = interop_dir() else { return };
    let work = tempfile::tempdir().expect("temp dir");
    let w = work.path();
    let o = node(&js, &["keys.mjs", w.to_str().expect("utf-8 path")]);
    assert!(o.status.success(), "{}", text(&o));
    let ext = "https://idp.example";
    let cfg = "[server]\npublic_url = \"https://gw.example/mcp\"\n[store]\npath = \":memory:\"\n[audit]\npath = \"audit.jsonl\"\n\
[[issuers]]\nissuer = \"https://idp.example\"\nalgorithms = [\"EdDSA\"]\njwks_file = \"EdDSA.jwks.json\"\n\
[[issuers]]\nissuer = \"https://rs.example\"\nalgorithms = [\"RS256\"]\npublic_key_file = \"RS256.pub.pem\"\nkid = \"RS256\"\n\
[[issuers]]\nissuer = \"https://ec.example\"\nalgorithms = [\"ES256\"]\npublic_key_file = \"ES256.pub.pem\"\nkid = \"ES256\"\n";
    std::fs::write(w.join("ext.toml"), cfg).expect("write config");
    for (alg, iss) in [
        ("EdDSA", ext),
        ("RS256", "https://rs.example"),
        ("ES256", "https://ec.example"),
    ] {
        let pem = w.join(format!("{alg}.pem"));
        let o = node(
            &js,
            &[
                "mint.mjs",
                alg,
                pem.to_str().expect("path"),
                alg,
                iss,
                AUD,
                "ext-user",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let token = String::from_utf8(o.stdout).expect("token");
        let o = guard(
            w,
            &["token", "verify", "--config", "ext.toml", "--json", &token],
        );
        assert!(o.status.success(), "{alg} from {iss} refused: {}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(
            (v["issuer"].as_str(), v["subject"].as_str()),
            (Some(iss), Some("ext-user"))
        );
        // Signed by the right key but claiming another configured issuer: refused.
        let other = if iss == ext {
            "https://rs.example"
        } else {
            ext
        };
        let o = node(
            &js,
            &[
                "mint.mjs",
                alg,
                pem.to_str().expect("path"),
                alg,
                other,
                AUD,
                "ext-user",
            ],
        );
        let token = String::from_utf8(o.stdout).expect("token");
        let o = guard(
            w,
            &["token", "verify", "--config", "ext.toml", "--json", &token],
        );
        assert_eq!(
            o.status.code(),
            Some(1),
            "{alg} token accepted under the wrong issuer"
        );
    }
    // HS256 "signed" with the published RSA public key: refused by the allow-list.
    let o = Command::new("node")
        .args([
            "mint.mjs",
            "HS256",
            "PUBKEY",
            "RS256",
            "https://rs.example",
            AUD,
            "mallory",
        ])
        .current_dir(&js)
        .env(
            "PUBKEY",
            std::fs::read_to_string(w.join("RS256.pub.pem")).expect("pem"),
        )
        .output()
        .expect("node runs");
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8(o.stdout).expect("token");
    let o = guard(
        w,
        &["token", "verify", "--config", "ext.toml", "--json", &token],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("alg_not_allowed"),
        "{}",
        text(&o)
    );
}

#[test]
fn tokens_mcp_guard_mints_verify_in_node_libraries() {
    let Some(js) = interop_dir() else { return };
    let work = tempfile::tempdir().expect("temp dir");
    let w = work.path();
    for alg in ["EdDSA", "ES256"] {
        let cfg = config(w, alg, &format!("algorithm = \"{alg}\""));
        let o = guard(
            w,
            &[
                "token", "issue", "--config", &cfg, "--sub", "alice", "--role", "user",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let token = String::from_utf8(o.stdout)
            .expect("token")
            .trim()
            .to_owned();
        let o = guard(w, &["keys", "jwks", "--config", &cfg]);
        assert!(o.status.success());
        let jwks_file = w.join(format!("{alg}.jwks.json"));
        std::fs::write(&jwks_file, &o.stdout).expect("write jwks");
        let o = node(
            &js,
            &[
                "verify.mjs",
                &token,
                jwks_file.to_str().expect("path"),
                ISS,
                AUD,
            ],
        );
        assert!(
            o.status.success(),
            "{alg}: jose refused mcp-guard's token: {}",
            text(&o)
        );
        let claims: Value = serde_json::from_slice(&o.stdout).expect("claims");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["_alg"], alg);
        // Against another key set, jose must refuse it.
        let other = config(
            w,
            &format!("{alg}-other"),
            &format!("algorithm = \"{alg}\""),
        );
        let o = guard(w, &["keys", "jwks", "--config", &other]);
        std::fs::write(&jwks_file, &o.stdout).expect("write jwks");
        let o = node(
            &js,
            &[
                "verify.mjs",
                &token,
                jwks_file.to_str().expect("path"),
                ISS,
                AUD,
            ],
        );
        assert_eq!(
            o.status.code(),
            Some(1),
            "{alg}: jose accepted a token against the wrong keys"
        );
    }
    // HS256, checked by jsonwebtoken with the shared secret.
    let cfg = config(w, "hs", "algorithm = \"HS256\"");
    let o = guard(w, &["token", "issue", "--config", &cfg, "--sub", "bob"]);
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8(o.stdout)
        .expect("token")
        .trim()
        .to_owned();
    let o = node(
        &js,
        &["verify.mjs", &token, "--hs256", "INTEROP_SECRET", ISS, AUD],
    );
    assert!(
        o.status.success(),
        "jsonwebtoken refused mcp-guard's HS256 token: {}",
        text(&o)
    );
}
