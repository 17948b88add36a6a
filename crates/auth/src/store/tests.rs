use std::sync::{Arc, Barrier};

use super::*;

fn family(id: &str, hash: &str) -> Family {
    Family {
        id: id.into(),
        client_id: "c1".into(),
        subject: "alice".into(),
        current_hash: hash.into(),
        exp: 2_000,
        revoked: false,
    }
}

fn key(kid: &str, created: i64) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        alg: "EdDSA".into(),
        pkcs8: vec![1, 2, 3],
        created,
        retired: None,
    }
}

/// The behaviour every backend must have.
fn contract(store: &dyn Store) {
    assert!(!store.is_revoked("j1").unwrap());
    store.revoke("j1", 1_000).unwrap();
    assert!(store.is_revoked("j1").unwrap());

    store.create_family(&family("f1", "h1")).unwrap();
    assert_eq!(
        store.rotate("f1", "h1", "h2", 3_000).unwrap(),
        Rotation::Rotated
    );
    assert_eq!(store.family("f1").unwrap().unwrap().current_hash, "h2");
    // h1 is spent: presenting it again is reuse, and the family dies.
    assert_eq!(
        store.rotate("f1", "h1", "h3", 3_000).unwrap(),
        Rotation::ReuseDetected
    );
    assert!(store.family("f1").unwrap().unwrap().revoked);
    // Even the current token no longer works.
    assert_eq!(
        store.rotate("f1", "h2", "h4", 3_000).unwrap(),
        Rotation::Revoked
    );
    assert_eq!(
        store.rotate("nope", "h", "h", 1).unwrap(),
        Rotation::Unknown
    );

    store.create_family(&family("f2", "x")).unwrap();
    store.revoke_family("f2").unwrap();
    assert_eq!(
        store.rotate("f2", "x", "y", 3_000).unwrap(),
        Rotation::Revoked
    );

    store.put_key(&key("k1", 10)).unwrap();
    store.put_key(&key("k2", 20)).unwrap();
    store.retire_key("k1", 25).unwrap();
    let keys = store.keys().unwrap();
    assert_eq!(
        keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["k1", "k2"]
    );
    assert_eq!((keys[0].retired, keys[1].retired), (Some(25), None));

    store.purge_expired(1_500).unwrap();
    assert!(
        !store.is_revoked("j1").unwrap(),
        "expired revocations are dropped"
    );
    assert!(
        store.family("f1").unwrap().is_some(),
        "families live until their exp"
    );
}

#[test]
fn memory_store_contract() {
    contract(&MemoryStore::new());
}

#[test]
fn sqlite_store_contract() {
    contract(&SqliteStore::open_in_memory().unwrap());
}

#[test]
fn sqlite_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.revoke("j", 9_999).unwrap();
        s.create_family(&family("f", "h1")).unwrap();
        assert_eq!(s.rotate("f", "h1", "h2", 9_999).unwrap(), Rotation::Rotated);
        s.put_key(&key("k", 1)).unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert!(s.is_revoked("j").unwrap());
    assert_eq!(
        s.rotate("f", "h1", "h9", 9_999).unwrap(),
        Rotation::ReuseDetected
    );
    assert_eq!(s.keys().unwrap()[0].pkcs8, vec![1, 2, 3]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the file holds private keys");
    }
}

#[test]
fn concurrent_rotations_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    SqliteStore::open(&path)
        .unwrap()
        .create_family(&family("f", "h0"))
        .unwrap();
    // Separate connections, as separate processes would have.
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let path = path.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let s = SqliteStore::open(&path).unwrap();
                barrier.wait();
                s.rotate("f", "h0", &format!("new{i}"), 9_999).unwrap()
            })
        })
        .collect();
    let outcomes: Vec<Rotation> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners = outcomes.iter().filter(|o| **o == Rotation::Rotated).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    // The losers presented a spent token: reuse, and the family is revoked.
    assert!(outcomes.iter().all(|o| matches!(
        o,
        Rotation::Rotated | Rotation::ReuseDetected | Rotation::Revoked
    )));
    assert!(
        SqliteStore::open(&path)
            .unwrap()
            .family("f")
            .unwrap()
            .unwrap()
            .revoked
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let e = SqliteStore::open(&path).err().unwrap();
    assert!(e.to_string().contains("newer"), "{e}");
}
