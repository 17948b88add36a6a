use serde_json::{Map, Value, json};

use super::*;
use crate::abac::{AttributePath, Condition, Operator};
use crate::context::{Environment, ProvidedAttributes, SessionFacts};
use crate::principal::AuthMethod;
use crate::{Classified, ClassifyOptions, classify};

fn p(s: &str) -> Pattern {
    Pattern::parse(s).unwrap()
}

fn principal(sub: &str) -> Principal {
    Principal::new(None, sub, AuthMethod::Cli)
}

fn call(name: &str, args: Value) -> Operation {
    Operation::CallTool {
        name: name.into(),
        arguments: Some(args),
    }
}

fn catalog() -> ToolCatalog {
    ToolCatalog::from_list_result(&json!({"tools": [
        {"name": "echo", "annotations": {"readOnlyHint": true}},
        {"name": "delete_file", "annotations": {"destructiveHint": true}},
        {"name": "deploy"},
    ]}))
}

struct Env {
    env: Environment,
    attrs: ProvidedAttributes,
    tools: ToolCatalog,
}

impl Env {
    fn new() -> Self {
        Env {
            env: Environment {
                now_unix: Some(1_795_665_360),
                ..Default::default()
            },
            attrs: ProvidedAttributes::new(),
            tools: catalog(),
        }
    }
    fn ctx(&self) -> Context<'_> {
        Context::new(&self.env, &self.attrs).with_tools(&self.tools)
    }
}

fn leaf(path: &str, op: &str, value: Value) -> Condition {
    Condition::Compare {
        path: AttributePath::parse(path).unwrap(),
        operator: Operator::parse(op, Some(value)).unwrap(),
    }
}

#[test]
fn default_roles_as_design_maps_them() {
    let az = AuthorizerBuilder::new().build().unwrap();
    let e = Env::new();
    let mut user = principal("u");
    user.roles = vec!["user".into()];
    let user = az.resolve(user);
    assert!(
        az.decide(&user, &call("echo", json!({})), &e.ctx())
            .is_allow()
    );
    let d = az.explain(&user, &call("delete_file", json!({})), &e.ctx());
    assert_eq!((d.verdict, &d.reason), (Verdict::Deny, &Reason::NoGrant));
    assert_eq!(
        d.permission.as_ref().unwrap().to_string(),
        "tools:execute:delete_file"
    );
    assert!(d.nearest.contains(&Nearest::Role {
        role: "admin".into(),
        pattern: "tools:*:*".into()
    }));
    // The seed's `tools/call` vs `tools:execute` mismatch: the derived permission is what roles name.
    let read = Operation::ReadResource {
        method: "resources/read",
        uri: "file:///a".into(),
    };
    assert!(az.decide(&user, &read, &e.ctx()).is_allow());
    assert!(
        !az.decide(
            &user,
            &Operation::System("logging/setLevel".into()),
            &e.ctx()
        )
        .is_allow()
    );

    let mut ro = principal("r");
    ro.roles = vec!["readonly".into()];
    let ro = az.resolve(ro);
    assert!(
        !az.decide(&ro, &read, &e.ctx()).is_allow(),
        "public groups are empty until configured"
    );

    let mut admin = principal("a");
    admin.roles = vec!["admin".into()];
    let admin = az.resolve(admin);
    for op in [
        call("delete_file", json!({})),
        read,
        Operation::System("logging/setLevel".into()),
    ] {
        assert!(az.decide(&admin, &op, &e.ctx()).is_allow(), "{op:?}");
    }
}

#[test]
fn annotation_groups_need_annotations() {
    let az = AuthorizerBuilder::new().build().unwrap();
    let env = Environment::default();
    let attrs = ProvidedAttributes::new();
    let no_catalog = Context::new(&env, &attrs);
    let mut user = principal("u");
    user.roles = vec!["user".into()];
    let user = az.resolve(user);
    let d = az.explain(&user, &call("echo", json!({})), &no_catalog);
    assert_eq!(d.verdict, Verdict::Deny);
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("no tools/list annotations are known for `echo`")),
        "{:?}",
        d.notes
    );
}

#[test]
fn every_grant_source_and_what_granted_it() {
    let az = AuthorizerBuilder::new()
        .role("deployer", vec![p("tools:execute:deploy")])
        .role("reader", vec![p("resources:read:file:///srv/*")])
        .scope("mcp:deploy", vec![p("tools:execute:deploy")])
        .assign(Assignment {
            issuer: None,
            subject: "carol".into(),
            roles: vec!["deployer".into()],
        })
        .assign(Assignment {
            issuer: Some("https://idp.example".into()),
            subject: "dave".into(),
            roles: vec!["deployer".into()],
        })
        .admin_user(None, "root")
        .default_role(Some("reader".into()))
        .build()
        .unwrap();
    let e = Env::new();
    let deploy = call("deploy", json!({}));
    let granted = |pr: Principal| az.decide(&az.resolve(pr), &deploy, &e.ctx());

    let d = granted(principal("carol"));
    assert_eq!(
        d.matched,
        vec![Matched::Role {
            role: "deployer".into(),
            pattern: "tools:execute:deploy".into()
        }]
    );
    let d = granted(principal("root"));
    assert_eq!(
        d.matched,
        vec![Matched::Role {
            role: "admin".into(),
            pattern: "tools:*:*".into()
        }]
    );
    let mut claim = principal("erin");
    claim.permissions = vec!["tools:execute:dep*".into()];
    assert_eq!(
        granted(claim).matched,
        vec![Matched::PermissionClaim {
            pattern: "tools:execute:dep*".into()
        }]
    );
    let mut scoped = principal("frank");
    scoped.scopes = vec!["mcp:deploy".into()];
    assert_eq!(
        granted(scoped).matched,
        vec![Matched::Scope {
            scope: "mcp:deploy".into(),
            pattern: "tools:execute:deploy".into()
        }]
    );

    // Default role applies to everyone authenticated.
    let srv = Operation::ReadResource {
        method: "resources/read",
        uri: "file:///srv/x".into(),
    };
    let d = az.decide(&az.resolve(principal("nobody")), &srv, &e.ctx());
    assert_eq!(
        d.matched,
        vec![Matched::Role {
            role: "reader".into(),
            pattern: "resources:read:file:///srv/*".into()
        }]
    );
    assert!(!granted(principal("nobody")).is_allow());

    // Scopes grant only through scope_map: a scope that looks like a pattern grants nothing.
    let mut sneaky = principal("mallory");
    sneaky.scopes = vec!["tools:*:*".into(), "admin".into()];
    let s = az.resolve(sneaky);
    assert!(!az.decide(&s, &deploy, &e.ctx()).is_allow());
    assert!(
        s.notes()
            .iter()
            .any(|n| n.contains("`tools:*:*` is not in scope_map"))
    );

    // Canonical identity: the same subject under another issuer is someone else; email is ignored.
    assert!(
        granted(Principal::new(
            Some("https://idp.example".into()),
            "dave",
            AuthMethod::ExternalJwt
        ))
        .is_allow()
    );
    assert!(
        !granted(Principal::new(
            Some("https://evil.example".into()),
            "dave",
            AuthMethod::ExternalJwt
        ))
        .is_allow()
    );
    assert!(
        !granted(Principal::new(
            Some("https://idp.example".into()),
            "carol",
            AuthMethod::ExternalJwt
        ))
        .is_allow()
    );
    let mut by_email = principal("zed");
    by_email.attributes.insert("email".into(), json!("root"));
    assert!(!granted(by_email).is_allow());

    // Unknown credential roles and invalid claims grant nothing and are noted.
    let mut odd = principal("odd");
    odd.roles = vec!["superuser".into()];
    odd.permissions = vec!["tools:exec".into(), "tools:execute:@nogroup".into()];
    let s = az.resolve(odd);
    assert!(!az.decide(&s, &deploy, &e.ctx()).is_allow());
    assert_eq!(s.notes().len(), 3, "{:?}", s.notes());
}

#[test]
fn scopes_for_challenges_are_minimal_in_config_order() {
    let az = AuthorizerBuilder::new()
        .scope("mcp:all", vec![p("tools:*:*")])
        .scope("mcp:deploy", vec![p("tools:execute:deploy")])
        .build()
        .unwrap();
    let e = Env::new();
    assert_eq!(
        az.scopes_granting(&Permission::tool("deploy"), &e.ctx()),
        vec!["mcp:all".to_owned()]
    );
    assert!(
        az.scopes_granting(&Permission::prompt("x"), &e.ctx())
            .is_empty()
    );
}

#[test]
fn build_errors() {
    assert!(matches!(
        AuthorizerBuilder::new()
            .role("x", vec![p("tools:execute:@nope")])
            .build(),
        Err(BuildError::UnknownGroup { .. })
    ));
    assert!(matches!(
        AuthorizerBuilder::new()
            .default_role(Some("ghost".into()))
            .build(),
        Err(BuildError::UnknownRole { .. })
    ));
    let pol = || Policy::new("dup", None, Effect::Allow, &["tools:*"], &["*"], vec![]).unwrap();
    assert!(matches!(
        AuthorizerBuilder::new().policy(pol()).policy(pol()).build(),
        Err(BuildError::DuplicatePolicy(_))
    ));
}

fn abac(mode: Mode) -> Authorizer {
    let allow_staging = Policy::new(
        "deploy-staging",
        None,
        Effect::Allow,
        &["tools:deploy"],
        &["execute"],
        vec![
            leaf("resource.arguments.env", "equals", json!("staging")),
            leaf("subject.department", "equals", json!("eng")),
        ],
    )
    .unwrap();
    let allow_reads = Policy::new(
        "reads",
        None,
        Effect::Allow,
        &["tools:@safe", "resources:*"],
        &["*"],
        vec![],
    )
    .unwrap();
    let deny_contractors = Policy::new(
        "no-contractors",
        None,
        Effect::Deny,
        &["tools:*"],
        &["execute"],
        vec![leaf("hr.employment", "equals", json!("contractor"))],
    )
    .unwrap();
    let deny_prod_args = Policy::new(
        "never-prod",
        None,
        Effect::Deny,
        &["tools:deploy"],
        &["execute"],
        vec![leaf("resource.arguments.env", "equals", json!("prod"))],
    )
    .unwrap();
    AuthorizerBuilder::new()
        .mode(mode)
        .role("deployer", vec![p("tools:execute:deploy")])
        .policy(allow_staging)
        .policy(allow_reads)
        .policy(deny_contractors)
        .policy(deny_prod_args)
        .build()
        .unwrap()
}

fn engineer() -> Principal {
    let mut pr = principal("eve");
    pr.attributes = serde_json::from_value::<Map<String, Value>>(json!({"department": "eng"}))
        .unwrap()
        .into();
    pr
}

#[test]
fn abac_arguments_deny_overrides_default_deny() {
    let az = abac(Mode::Abac);
    let mut e = Env::new();
    e.attrs
        .insert_available("hr", json!({"employment": "staff"}));
    let eve = az.resolve(engineer());
    let d = az.explain(&eve, &call("deploy", json!({"env": "staging"})), &e.ctx());
    assert!(d.is_allow(), "{d:?}");
    assert_eq!(
        d.matched,
        vec![Matched::Policy {
            id: "deploy-staging".into(),
            effect: "allow"
        }]
    );
    let d = az.explain(&eve, &call("deploy", json!({"env": "dev"})), &e.ctx());
    assert_eq!(d.reason, Reason::NoAllowPolicy, "default deny");
    assert_eq!(
        d.nearest,
        vec![Nearest::Policy {
            id: "deploy-staging".into()
        }]
    );
    let d = az.explain(&eve, &call("deploy", json!({"env": "prod"})), &e.ctx());
    assert_eq!(d.reason, Reason::DeniedByPolicy("never-prod".into()));
    // Deny overrides an allow that also applies.
    e.attrs
        .insert_available("hr", json!({"employment": "contractor"}));
    let d = az.explain(&eve, &call("deploy", json!({"env": "staging"})), &e.ctx());
    assert_eq!(d.reason, Reason::DeniedByPolicy("no-contractors".into()));
    assert_eq!(
        d.matched,
        vec![Matched::Policy {
            id: "no-contractors".into(),
            effect: "deny"
        }]
    );
    // A tool no policy covers: default deny.
    e.attrs
        .insert_available("hr", json!({"employment": "staff"}));
    let d = az.explain(&eve, &call("other", json!({})), &e.ctx());
    assert_eq!(d.reason, Reason::NoAllowPolicy);
}

#[test]
fn provider_failure_only_takes_access_away() {
    let az = abac(Mode::Abac);
    let mut e = Env::new();
    e.attrs.insert_unavailable("hr", "timeout after 200ms");
    let eve = az.resolve(engineer());
    // The deny policy's condition is unknown, so the deny applies.
    let d = az.explain(&eve, &call("deploy", json!({"env": "staging"})), &e.ctx());
    assert_eq!(d.reason, Reason::DeniedByPolicy("no-contractors".into()));
    assert!(d.unknown.iter().any(|u| u.path == "hr.employment"
        && u.reason == UnknownReason::ProviderFailed("timeout after 200ms".into())));
    assert!(d.explain().contains("unknown"), "{}", d.explain());
    // With no hr provider at all, likewise.
    let e2 = Env::new();
    assert!(
        !az.decide(&eve, &call("deploy", json!({"env": "staging"})), &e2.ctx())
            .is_allow()
    );
    // A missing subject attribute never grants.
    let mut e3 = Env::new();
    e3.attrs
        .insert_available("hr", json!({"employment": "staff"}));
    let nobody = az.resolve(principal("x"));
    let d = az.explain(
        &nobody,
        &call("deploy", json!({"env": "staging"})),
        &e3.ctx(),
    );
    assert_eq!(d.reason, Reason::NoAllowPolicy);
    assert!(
        d.unknown
            .iter()
            .any(|u| u.path == "subject.department" && u.reason == UnknownReason::Missing)
    );
}

#[test]
fn list_time_rule() {
    let az = abac(Mode::Abac);
    let mut e = Env::new();
    e.attrs
        .insert_available("hr", json!({"employment": "staff"}));
    let eve = az.resolve(engineer());
    let mut result = json!({"tools": [
        {"name": "echo", "annotations": {"readOnlyHint": true}},
        {"name": "deploy"},
        {"name": "delete_file", "annotations": {"destructiveHint": true}},
        {"title": "no name"},
    ]});
    let counts = az.filter_list(&eve, ListKind::Tools, &mut result, &e.ctx());
    let names: Vec<&str> = result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    // `deploy` is listed: some call (env = staging) could be allowed, and the deny on env = prod
    // does not hide it. delete_file has no allow policy; the nameless item is dropped.
    assert_eq!(names, vec!["echo", "deploy"]);
    assert_eq!(
        counts,
        ListCounts {
            shown: 2,
            hidden: 2
        }
    );
    // A deny that holds whatever the arguments hides the tool.
    e.attrs
        .insert_available("hr", json!({"employment": "contractor"}));
    assert!(!az.item_visible(&eve, ListKind::Tools, "deploy", &e.ctx()));
    // Unknown never grants at list time either.
    let nobody = az.resolve(principal("x"));
    assert!(!az.item_visible(&nobody, ListKind::Tools, "deploy", &e.ctx()));
}

#[test]
fn rbac_plus_abac() {
    let az = abac(Mode::RbacAbac);
    let mut e = Env::new();
    e.attrs
        .insert_available("hr", json!({"employment": "staff"}));
    let mut dep = principal("d");
    dep.roles = vec!["deployer".into()];
    let dep = az.resolve(dep);
    // RBAC allows; ABAC allow policies are not needed, only denies count.
    assert!(
        az.decide(&dep, &call("deploy", json!({"env": "dev"})), &e.ctx())
            .is_allow()
    );
    let d = az.decide(&dep, &call("deploy", json!({"env": "prod"})), &e.ctx());
    assert_eq!(d.reason, Reason::DeniedByPolicy("never-prod".into()));
    // RBAC must allow: eve has an ABAC allow but no role.
    let eve = az.resolve(engineer());
    assert_eq!(
        az.decide(&eve, &call("deploy", json!({"env": "staging"})), &e.ctx())
            .reason,
        Reason::NoGrant
    );
}

#[test]
fn session_facts_unknown_means_deny() {
    let az = AuthorizerBuilder::new().build().unwrap();
    let e = Env::new();
    let s = az.resolve(principal("a"));
    let task = Operation::Task {
        method: crate::TaskMethod::Get,
        task_id: "t".into(),
    };
    assert_eq!(
        az.decide(&s, &task, &e.ctx()).reason,
        Reason::TaskOwnerUnknown
    );
    let owned = e.ctx().with_session(SessionFacts {
        task_owned: Some(true),
        ..Default::default()
    });
    assert!(az.decide(&s, &task, &owned).is_allow());
    let other = e.ctx().with_session(SessionFacts {
        task_owned: Some(false),
        ..Default::default()
    });
    assert_eq!(az.decide(&s, &task, &other).reason, Reason::TaskNotOwned);
    assert_eq!(
        az.decide(&s, &Operation::ClientResponse, &e.ctx()).reason,
        Reason::UnsolicitedResponse
    );
    assert!(
        az.decide(&s, &Operation::Lifecycle("initialize"), &e.ctx())
            .is_allow()
    );
    assert!(
        az.decide(&s, &Operation::List(ListKind::Tools), &e.ctx())
            .is_allow()
    );
}

#[test]
fn only_allowed_messages_are_permitted() {
    let az = AuthorizerBuilder::new().build().unwrap();
    let e = Env::new();
    let mut u = principal("u");
    u.roles = vec!["user".into()];
    let u = az.resolve(u);
    let msg = |name: &str| match classify(
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#)
            .as_bytes(),
        ClassifyOptions::default(),
    ) {
        Classified::Single(Ok(m)) => m,
        other => panic!("{other:?}"),
    };
    let (d, permitted) = az.permit(&u, msg("echo"), &e.ctx());
    assert!(d.is_allow());
    assert_eq!(
        permitted.unwrap().get().id,
        Some(crate::message::RequestId::Number(1))
    );
    let (d, permitted) = az.permit(&u, msg("delete_file"), &e.ctx());
    assert!(!d.is_allow() && permitted.is_none());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn pattern() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("tools"), Just("resources"), Just("*")],
            prop_oneof![Just("execute"), Just("read"), Just("*")],
            proptest::string::string_regex("[ab]{0,2}\\*?[ab]{0,2}|@safe").unwrap(),
        )
            .prop_filter_map("valid", |(d, a, t)| {
                let d = if t.starts_with('@') { "tools" } else { d };
                let text = format!("{d}:{a}:{t}");
                Pattern::parse(&text).ok().map(|_| text)
            })
    }

    fn op() -> impl Strategy<Value = Operation> {
        (
            prop::bool::ANY,
            proptest::string::string_regex("[ab]{0,3}").unwrap(),
        )
            .prop_map(|(tool, t)| {
                if tool {
                    call(&t, json!({}))
                } else {
                    Operation::ReadResource {
                        method: "resources/read",
                        uri: t.into(),
                    }
                }
            })
    }

    proptest! {
        /// In RBAC mode, adding a grant (to a held role, as a claim, or a new role) never turns
        /// an allow into a deny.
        #[test]
        fn adding_a_grant_never_turns_allow_into_deny(
            roles in proptest::collection::vec(proptest::collection::vec(pattern(), 0..4), 1..4),
            held in proptest::collection::vec(0usize..4, 0..3),
            claims in proptest::collection::vec(pattern(), 0..3),
            extra in pattern(),
            to_role in 0usize..4,
            ops in proptest::collection::vec(op(), 1..8),
        ) {
            let build = |extra_role_pattern: Option<(usize, &str)>| {
                let mut b = AuthorizerBuilder::new();
                for (i, pats) in roles.iter().enumerate() {
                    let mut compiled: Vec<Pattern> = pats.iter().map(|s| p(s)).collect();
                    if let Some((r, x)) = extra_role_pattern && r == i {
                        compiled.push(p(x));
                    }
                    b = b.role(format!("r{i}"), compiled);
                }
                b.build().unwrap()
            };
            let mut pr = principal("s");
            pr.roles = held.iter().filter(|h| **h < roles.len()).map(|h| format!("r{h}")).collect();
            pr.permissions = claims.clone();
            let e = Env::new();
            let before = build(None);
            let subject = before.resolve(pr.clone());
            let target_role = held.first().copied().unwrap_or(to_role) % roles.len();
            let after_role = build(Some((target_role, &extra)));
            let after_role_subject = after_role.resolve(pr.clone());
            let mut with_claim = pr.clone();
            with_claim.permissions.push(extra.clone());
            let claim_subject = before.resolve(with_claim);
            let mut with_admin = pr;
            with_admin.roles.push("admin".into());
            let admin_subject = before.resolve(with_admin);
            for o in &ops {
                if before.decide(&subject, o, &e.ctx()).is_allow() {
                    prop_assert!(after_role.decide(&after_role_subject, o, &e.ctx()).is_allow());
                    prop_assert!(before.decide(&claim_subject, o, &e.ctx()).is_allow());
                    prop_assert!(before.decide(&admin_subject, o, &e.ctx()).is_allow());
                }
                // decide and explain agree on the verdict.
                prop_assert_eq!(
                    before.decide(&subject, o, &e.ctx()).verdict,
                    before.explain(&subject, o, &e.ctx()).verdict
                );
            }
        }
    }
}
