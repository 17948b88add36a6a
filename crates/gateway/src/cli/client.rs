//! `mcp-guard client add|list|remove`: confidential clients in the configuration file.
//! Only the argon2 hash of a secret is written; the secret is printed once.

use std::path::{Path, PathBuf};

use mcp_guard_auth::clients::{generate_secret, hash_secret};
use serde_json::json;

use super::{ClientAddArgs, ClientCommand, ClientIdArgs, Exit, KeysArgs};
use crate::config::{self, DEFAULT_FILE};

pub(super) fn run(cmd: &ClientCommand) -> Exit {
    let result = match cmd {
        ClientCommand::Add(a) => add(a),
        ClientCommand::List(a) => list(a),
        ClientCommand::Remove(a) => remove(a),
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Usage
        }
    }
}

fn file(config: Option<&Path>) -> PathBuf {
    config.map_or_else(|| PathBuf::from(DEFAULT_FILE), Path::to_path_buf)
}

fn add(a: &ClientAddArgs) -> anyhow::Result<()> {
    let path = file(a.config.as_deref());
    let before = config::load_file(&path)?;
    if before.clients.iter().any(|c| c.id == a.id) {
        anyhow::bail!("client `{}` already exists in `{}`", a.id, path.display());
    }
    let secret = generate_secret()?;
    let hash = hash_secret(secret.expose())?;
    let mut text = std::fs::read_to_string(&path)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let list = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    text.push_str(&format!(
        "\n[[clients]]\nid = {}\nsecret_hash = {}\nroles = {}\nscopes = {}\nintrospect = {}\n",
        toml_string(&a.id),
        toml_string(&hash),
        list(&a.roles),
        list(&a.scopes),
        a.introspect
    ));
    // Check the result loads before replacing the file, so a bad role leaves it untouched.
    config::load_str(&path.display().to_string(), &text, path.parent())?;
    std::fs::write(&path, text)?;
    println!("{}", secret.expose());
    eprintln!(
        "client `{}` added to `{}`; its secret is shown once, above",
        a.id,
        path.display()
    );
    Ok(())
}

fn toml_string(s: &str) -> String {
    toml_edit::Value::from(s).to_string().trim().to_owned()
}

fn list(a: &KeysArgs) -> anyhow::Result<()> {
    let c = config::load(a.config.as_deref())?;
    if a.json {
        let rows: Vec<_> = c
            .clients
            .iter()
            .map(|c| json!({"id": c.id, "roles": c.roles, "scopes": c.scopes, "introspect": c.may_introspect}))
            .collect();
        println!("{}", json!({ "clients": rows }));
    } else if c.clients.is_empty() {
        println!("no clients");
    } else {
        for c in &c.clients {
            println!(
                "{} roles=[{}] scopes=[{}]{}",
                c.id,
                c.roles.join(","),
                c.scopes.join(","),
                if c.may_introspect { " introspect" } else { "" }
            );
        }
    }
    Ok(())
}

fn remove(a: &ClientIdArgs) -> anyhow::Result<()> {
    let path = file(a.config.as_deref());
    let text = std::fs::read_to_string(&path)?;
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    let Some(clients) = doc
        .get_mut("clients")
        .and_then(|c| c.as_array_of_tables_mut())
    else {
        anyhow::bail!("no client `{}` in `{}`", a.id, path.display());
    };
    let before = clients.len();
    clients.retain(|t| t.get("id").and_then(|v| v.as_str()) != Some(a.id.as_str()));
    if clients.len() == before {
        anyhow::bail!("no client `{}` in `{}`", a.id, path.display());
    }
    let out = doc.to_string();
    config::load_str(&path.display().to_string(), &out, path.parent())?;
    std::fs::write(&path, out)?;
    println!("removed `{}`", a.id);
    Ok(())
}
