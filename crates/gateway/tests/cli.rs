//! Runs the real `mcp-guard` binary: exit codes, JSON fields and messages are a contract.

#![expect(clippy::expect_used, reason = "test helpers fail the test loudly")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

#[track_caller]
fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON object: {e}: {}", stdout(o)))
}

const CHECK: &[&str] = &["check", "--config", "mcp-guard.toml", "--subject", "alice"];

fn check(extra: &[&str]) -> Output {
    let mut args = CHECK.to_vec();
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn check_allows_a_safe_tool_and_names_the_grant() {
    let o = check(&[
        "--method",
        "tools/call",
        "--name",
        "echo",
        "--annotations",
        "examples/tools-list.json",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["permission"], "tools:execute:echo");
    assert_eq!(v["matched"][0]["source"], "role");
    assert_eq!(v["matched"][0]["role"], "user");
    assert_eq!(v["matched"][0]["pattern"], "tools:execute:@safe");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("granted by role `user`")
    );
    assert_eq!(v["unknown"], Value::Array(vec![]));
}

#[test]
fn check_denies_a_destructive_tool_with_the_nearest_grant() {
    let o = check(&[
        "--method",
        "tools/call",
        "--name",
        "delete_file",
        "--annotations",
        "examples/tools-list.json",
        "--json",
    ]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["permission"], "tools:execute:delete_file");
    assert_eq!(v["reason_kind"], "no_grant");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("missing permission `tools:execute:delete_file`")
    );
    assert_eq!(v["matched"], Value::Array(vec![]));
    assert!(
        v["nearest"][0]
            .as_str()
            .unwrap()
            .contains("role `admin` would allow it via `tools:*:*`"),
        "{v}"
    );

    // Text output carries the same facts.
    let o = check(&[
        "--method",
        "tools/call",
        "--name",
        "delete_file",
        "--annotations",
        "examples/tools-list.json",
    ]);
    assert_eq!(code(&o), 1);
    let text = stdout(&o);
    assert!(text.starts_with("DENY tools:execute:delete_file"), "{text}");
    assert!(text.contains("nearest: role `admin`"), "{text}");
}

#[test]
fn check_without_annotations_says_why_annotation_groups_matched_nothing() {
    let o = check(&["--method", "tools/call", "--name", "echo", "--json"]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("no tools/list annotations are known for `echo`"),
        "{notes}"
    );
}

#[test]
fn check_credential_grants_add_to_the_config() {
    let o = check(&[
        "--method",
        "tools/call",
        "--name",
        "deploy",
        "--permission",
        "tools:execute:deploy",
        "--json",
    ]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["matched"][0]["source"], "permission_claim");
    let o = check(&[
        "--method",
        "tools/call",
        "--name",
        "deploy",
        "--role",
        "admin",
        "--json",
    ]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["matched"][0]["role"], "admin");
    let o = check(&[
        "--method",
        "resources/read",
        "--uri",
        "file:///x",
        "--scope",
        "mcp:read",
        "--json",
    ]);
    assert_eq!(code(&o), 0);
    let v = json(&o);
    assert!(
        v["matched"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["source"] == "scope" && m["scope"] == "mcp:read"),
        "{v}"
    );
}

#[test]
fn check_lists_visible_tools_for_list_requests() {
    let o = check(&[
        "--method",
        "tools/list",
        "--annotations",
        "examples/tools-list.json",
        "--json",
    ]);
    assert_eq!(code(&o), 0);
    let v = json(&o);
    assert_eq!(v["visible"], serde_json::json!(["echo", "get-sum"]));
    assert_eq!(
        v["hidden"],
        serde_json::json!(["delete_file", "deploy", "mystery"])
    );
}

#[test]
fn check_abac_unknown_attributes_are_reported_and_deny() {
    let base = [
        "check",
        "--config",
        "examples/abac.toml",
        "--subject",
        "eve",
        "--method",
        "tools/call",
        "--name",
        "deploy",
        "--arg",
        "env=\"staging\"",
        "--attr",
        "subject.department=eng",
        "--json",
    ];
    let mut ok = base.to_vec();
    ok.extend(["--attr", "hr.employment=\"staff\""]);
    let o = run(&ok);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert_eq!(json(&o)["matched"][0]["policy"], "deploy-staging");

    let mut down = base.to_vec();
    down.extend(["--unavailable", "hr"]);
    let o = run(&down);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(v["unknown"], serde_json::json!(["hr.employment"]));
    assert_eq!(v["matched"][0]["policy"], "no-contractors-destructive");
    assert!(
        v["unknown_details"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("provider failed")
    );
}

#[test]
fn check_usage_and_config_errors_exit_2() {
    let o = run(&["check", "--subject", "alice"]);
    assert_eq!(code(&o), 2, "missing --method is a usage error");
    let o = check(&["--method", "tools/call"]);
    assert_eq!(
        code(&o),
        2,
        "the gateway would refuse a tools/call without a name"
    );
    assert!(stderr(&o).contains("-32602"), "{}", stderr(&o));
    let o = check(&[
        "--method",
        "tools/call",
        "--name",
        "x",
        "--attr",
        "resource.name=y",
    ]);
    assert_eq!(code(&o), 2);
    let o = run(&[
        "check",
        "--config",
        "crates/gateway/tests/data/config/invalid/bad-pattern.toml",
        "--subject",
        "a",
        "--method",
        "ping",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("bad-pattern.toml:2:36:"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "check",
        "--config",
        "does/not/exist.toml",
        "--subject",
        "a",
        "--method",
        "ping",
    ]);
    assert_eq!(code(&o), 2);
}

#[test]
fn help_lists_exit_codes() {
    let o = run(&["--help"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("Exit codes: 0 allow"), "{}", stdout(&o));
    let o = run(&["check", "--help"]);
    assert!(stdout(&o).contains("--annotations <FILE>"));
}

#[test]
fn shipped_policy_tests_pass() {
    for (cases, config) in [
        ("examples/policy-tests.toml", "mcp-guard.toml"),
        ("examples/abac-tests.toml", "examples/abac.toml"),
    ] {
        let o = run(&["policy", "test", cases, "--config", config]);
        assert_eq!(code(&o), 0, "{cases}: {}{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).trim_end().ends_with(" passed, 0 failed"),
            "{}",
            stdout(&o)
        );
    }
}

#[test]
fn policy_test_reports_each_failure() {
    let o = run(&[
        "policy",
        "test",
        "crates/gateway/tests/data/policy/failing.toml",
        "--config",
        "mcp-guard.toml",
    ]);
    assert_eq!(code(&o), 1);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("FAIL crates/gateway/tests/data/policy/failing.toml:"),
        "{out}"
    );
    assert!(
        lines[0].contains("wrong verdict: expected allow, got deny"),
        "{out}"
    );
    assert!(
        lines[1]
            .contains("wrong reason: deny as expected, but the reason does not contain `nonsense`"),
        "{out}"
    );
    assert_eq!(lines[2], "1 passed, 2 failed");

    let o = run(&[
        "policy",
        "test",
        "crates/gateway/tests/data/policy/failing.toml",
        "--config",
        "mcp-guard.toml",
        "--json",
    ]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(
        (v["passed"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(v["cases"][0]["ok"], false);
    assert_eq!(v["cases"][2]["ok"], true);
}

#[test]
fn policy_test_file_errors_exit_2() {
    let o = run(&[
        "policy",
        "test",
        "crates/gateway/tests/data/policy/bad-field.toml",
        "--config",
        "mcp-guard.toml",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("bad-field.toml:5:1: unknown field `expected`"),
        "{}",
        stderr(&o)
    );
}

/// Every invalid config: exit 2 and `file:line:col: message`.
#[test]
fn invalid_configs_are_located() {
    let expected: &[(&str, &str, &str)] = &[
        (
            "attributes-bad-timeout.toml",
            "4:11",
            "invalid duration `half a second` (key `attributes.hr.timeout`)",
        ),
        (
            "attributes-unknown-kind.toml",
            "2:8",
            "unknown attribute provider kind `ldap` (key `attributes.team.kind`)",
        ),
        (
            "attributes-userinfo-http.toml",
            "3:7",
            "invalid userinfo URL `http://idp.example.com/userinfo` (key `attributes.idp.url`)\n  help: the caller's token is sent there: an https URL, or http to 127.0.0.1 or [::1]",
        ),
        (
            "attributes-userinfo-no-issuer.toml",
            "2:8",
            "a `userinfo` provider needs `issuer` (key `attributes.idp`)",
        ),
        (
            "attributes-wrong-option.toml",
            "4:7",
            "`url` does not apply to a `static` provider (key `attributes.team.url`)",
        ),
        (
            "bad-duration.toml",
            "2:11",
            "invalid duration `30 minutes` (key `session.timeout`)",
        ),
        ("bad-effect.toml", "3:10", "unknown effect `permit`"),
        (
            "bad-mode.toml",
            "2:8",
            "unknown mode `acl` (key `authorization.mode`)",
        ),
        ("bad-path.toml", "6:29", "invalid attribute path"),
        (
            "bad-pattern.toml",
            "2:36",
            "invalid permission pattern `tools:exec`: expected `domain:action:target` (key `roles.ops.permissions[1]`)\n  help: did you mean `tools:exec:*`?",
        ),
        ("bad-range.toml", "6:77", "`min` is above `max`"),
        (
            "bad-regex.toml",
            "9:75",
            "invalid regex: unclosed group (key `policies[0].conditions[0].value`)",
        ),
        ("bad-resource.toml", "4:14", "expected `<domain>:<target>`"),
        ("duplicate-policy.toml", "8:6", "duplicate policy id `a`"),
        ("group-in-group.toml", "2:17", "a group cannot be used here"),
        (
            "mixed-condition.toml",
            "6:15",
            "a condition is exactly one of",
        ),
        (
            "stdio-secret.toml",
            "3:24",
            "`MCP_GUARD_TOKEN` holds one of the gateway's own secrets (key `stdio.inherit_env`)",
        ),
        (
            "stdio-unknown-role.toml",
            "2:47",
            "unknown role `ghost` (key `stdio.identity.roles[1]`)",
        ),
        ("syntax.toml", "2:13", "(key `authorization.mode`)"),
        (
            "unknown-default-role.toml",
            "2:16",
            "unknown role `guest` (key `authorization.default_role`)",
        ),
        ("unknown-field.toml", "2:1", "unknown field `mod`"),
        ("unknown-group.toml", "2:31", "unknown group `@nope`"),
        ("unknown-operator.toml", "10:44", "unknown operator `like`"),
        (
            "unknown-role.toml",
            "3:18",
            "unknown role `ghost` (key `users[0].roles[1]`)",
        ),
    ];
    let dir = root().join("crates/gateway/tests/data/config/invalid");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let listed: Vec<String> = expected.iter().map(|(f, _, _)| (*f).to_owned()).collect();
    assert_eq!(files, listed, "every invalid fixture needs an expectation");
    for (file, at, message) in expected {
        let path = format!("crates/gateway/tests/data/config/invalid/{file}");
        let o = run(&["config", "check", "--config", &path]);
        assert_eq!(code(&o), 2, "{file}");
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("error: {path}:{at}: ")),
            "{file}: {err}"
        );
        assert!(err.contains(message), "{file}: {err}");
    }
}

#[test]
fn valid_configs_pass_config_check() {
    for path in [
        "mcp-guard.toml",
        "examples/abac.toml",
        "examples/attributes.toml",
        "examples/stdio.toml",
    ] {
        let o = run(&["config", "check", "--config", path]);
        assert_eq!(code(&o), 0, "{path}: {}", stderr(&o));
        assert!(stdout(&o).contains(": ok (mode"), "{}", stdout(&o));
    }
}
