//! `mcp-guard check`: decide one request and explain it.

use std::time::Instant;

use mcp_guard_core::{Decision, Matched, ToolCatalog};
use serde_json::{Map, Value, json};

use super::request::{Outcome, RequestInput, decide, parse_assignment, set_path};
use super::{CheckArgs, Exit};
use crate::config;

pub(super) fn run(args: &CheckArgs) -> Exit {
    let config = match config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let input = match input(args) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let started = Instant::now();
    let outcome = match decide(&config, &input) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let elapsed = started.elapsed();
    if args.json {
        let mut v = to_json(&outcome);
        v["engine_time_ns"] = json!(elapsed.as_nanos() as u64);
        println!("{v}");
    } else {
        print!("{}", to_text(&outcome));
    }
    if outcome.decision.is_allow() {
        Exit::Ok
    } else {
        Exit::Fail
    }
}

fn input(args: &CheckArgs) -> Result<RequestInput, String> {
    let mut attributes = Map::new();
    for a in &args.attrs {
        let (path, value) = parse_assignment(a)?;
        set_path(&mut attributes, &path, value)?;
    }
    let mut arguments = Map::new();
    for a in &args.args {
        let (key, value) = parse_assignment(a)?;
        arguments.insert(key, value);
    }
    let catalog = match &args.annotations {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| format!("`{}` is not JSON: {e}", path.display()))?;
            let catalog = ToolCatalog::from_list_result(&value);
            if catalog.is_empty() {
                return Err(format!(
                    "`{}` holds no tools: expected a `tools/list` result",
                    path.display()
                ));
            }
            Some(catalog)
        }
    };
    Ok(RequestInput {
        subject: args.subject.clone(),
        issuer: args.issuer.clone(),
        roles: args.roles.clone(),
        permissions: args.permissions.clone(),
        scopes: args.scopes.clone(),
        attributes,
        unavailable: args.unavailable.clone(),
        method: args.method.clone(),
        name: args.name.clone(),
        uri: args.uri.clone(),
        arguments,
        catalog,
        now_unix: Some(crate::tokens::now_unix()),
    })
}

fn matched_json(m: &Matched) -> Value {
    let mut v = match m {
        Matched::Role { role, pattern } => json!({"role": &**role, "pattern": &**pattern}),
        Matched::PermissionClaim { pattern } => json!({"pattern": &**pattern}),
        Matched::Scope { scope, pattern } => json!({"scope": &**scope, "pattern": &**pattern}),
        Matched::Policy { id, effect } => json!({"policy": &**id, "effect": effect}),
    };
    v["source"] = json!(m.source());
    v
}

pub(super) fn permission_text(d: &Decision) -> String {
    d.permission
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

fn to_json(o: &Outcome) -> Value {
    let d = &o.decision;
    let mut v = json!({
        "decision": d.verdict.as_str(),
        "permission": permission_text(d),
        "reason": d.explain(),
        "reason_kind": d.reason.kind(),
        "matched": d.matched.iter().map(matched_json).collect::<Vec<_>>(),
        "unknown": d.unknown.iter().map(|u| u.path.clone()).collect::<Vec<_>>(),
        "unknown_details": d.unknown.iter().map(|u| json!({
            "path": u.path, "reason": u.reason.to_string(), "policy": u.policy,
        })).collect::<Vec<_>>(),
        "nearest": d.nearest.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "notes": d.notes,
        "roles": o.roles.iter().map(|(r, origin)| json!({"role": r, "origin": origin})).collect::<Vec<_>>(),
    });
    if let Some((visible, hidden)) = &o.listing {
        v["visible"] = json!(visible);
        v["hidden"] = json!(hidden);
    }
    v
}

fn to_text(o: &Outcome) -> String {
    use std::fmt::Write;
    let d = &o.decision;
    let mut out = String::new();
    let perm = permission_text(d);
    let _ = writeln!(
        out,
        "{} {}",
        d.verdict.as_str().to_uppercase(),
        if perm.is_empty() {
            "(no permission needed)"
        } else {
            &perm
        }
    );
    let _ = writeln!(out, "  reason: {}", d.explain());
    let roles: Vec<String> = o
        .roles
        .iter()
        .map(|(r, origin)| format!("{r} ({origin})"))
        .collect();
    let _ = writeln!(
        out,
        "  roles: {}",
        if roles.is_empty() {
            "none".into()
        } else {
            roles.join(", ")
        }
    );
    for m in &d.matched {
        let _ = writeln!(out, "  matched: {m}");
    }
    for u in &d.unknown {
        let _ = writeln!(
            out,
            "  unknown: {} ({}; policy `{}`)",
            u.path, u.reason, u.policy
        );
    }
    for n in &d.nearest {
        let _ = writeln!(out, "  nearest: {n}");
    }
    for n in &d.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    if let Some((visible, hidden)) = &o.listing {
        let _ = writeln!(out, "  visible: {}", visible.join(", "));
        let _ = writeln!(out, "  hidden: {}", hidden.join(", "));
    }
    out
}
