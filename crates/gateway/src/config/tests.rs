use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
    for bad in [
        "",
        "0s",
        "5",
        "m",
        "1.5h",
        "-1h",
        "1w",
        "99999999999999999999d",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn embedded_defaults_load_with_the_seed_values() {
    let c = load_embedded().unwrap();
    assert_eq!(c.authorizer.mode(), Mode::Rbac);
    assert_eq!(c.authorizer.role_names(), ["admin", "user", "readonly"]);
    assert!(
        c.public_methods.is_empty(),
        "public methods are empty by default"
    );
    assert_eq!(c.session.timeout, Duration::from_secs(1800));
    assert_eq!(c.session.max_sessions, 1000);
    assert_eq!(c.token.access_token_expiry, Duration::from_secs(3600));
    assert_eq!(
        c.token.refresh_token_expiry,
        Duration::from_secs(7 * 86_400)
    );
    assert!(c.warnings.is_empty());
}

#[test]
fn columns_count_characters_and_keys_come_from_tables() {
    // A two-byte character before the bad pattern counts as one column.
    let text = "[roles.\"é\"]\npermissions = [\"tools:execute:ü\", \"tools:exec\"]\n";
    let e = load_str("t.toml", text, None).unwrap_err();
    assert_eq!((e.line, e.column), (2, 36), "{e}");
    assert_eq!(e.key, "roles.é.permissions[1]");
    let src = Source {
        name: "x".into(),
        text: "[a.b]\nc = 1\n",
    };
    assert_eq!(src.key_at(10), "a.b.c");
}

#[test]
fn warnings_for_unused_or_empty_policy_sets() {
    let text = "[[policies]]\nid = \"p\"\neffect = \"allow\"\nresources = [\"tools:*\"]\nactions = [\"*\"]\n";
    let c = load_str("t.toml", text, None).unwrap();
    assert!(c.warnings[0].contains("not used"), "{:?}", c.warnings);
    let c = load_str("t.toml", "[authorization]\nmode = \"abac\"\n", None).unwrap();
    assert!(
        c.warnings[0].contains("everything is denied"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn admin_users_need_an_admin_role_and_accept_issuers() {
    let c = load_str(
        "t.toml",
        "[authorization]\nadmin_users = [\"root\", { subject = \"ops\", issuer = \"https://idp\" }]\n",
        None,
    )
    .unwrap();
    assert_eq!(c.authorizer.role_names().len(), 3);
}

#[test]
fn errors_never_show_the_offending_line() {
    // A parse error near a value must not echo the value: only position, key and message.
    let text = "[token]\nsecret_env = \"MY_SECRET_VALUE_abc123\nx = 1\n";
    let e = load_str("t.toml", text, None).unwrap_err();
    let shown = e.to_string();
    assert!(!shown.contains("MY_SECRET_VALUE_abc123"), "{shown}");
    assert!(shown.starts_with("t.toml:2:"), "{shown}");
}
