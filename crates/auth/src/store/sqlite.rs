//! The embedded default store: one SQLite file (WAL), shared safely by several processes.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Family, Rotation, Store, StoreError, StoredKey};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &["CREATE TABLE revoked (
        jti TEXT PRIMARY KEY,
        exp INTEGER NOT NULL
    );
    CREATE INDEX revoked_exp ON revoked (exp);
    CREATE TABLE refresh_families (
        id TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        current_hash TEXT NOT NULL,
        exp INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        pkcs8 BLOB NOT NULL,
        created INTEGER NOT NULL,
        retired INTEGER
    );"];

/// A SQLite-backed store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it. On Unix the file is
    /// made readable by its owner only: it holds private keys.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
        Self::setup(conn)
    }

    /// A private in-memory database (tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::setup(Connection::open_in_memory().map_err(err)?)
    }

    fn setup(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        // WAL lets readers in other processes go on while one writes.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if version > known {
            return Err(StoreError(format!(
                "the database schema is version {version}, newer than this mcp-guard knows ({known})"
            )));
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            let tx = conn.unchecked_transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(
                None,
                "user_version",
                i64::try_from(i + 1).unwrap_or(i64::MAX),
            )
            .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError("sqlite store lock poisoned".into()))?;
        f(&mut conn).map_err(err)
    }
}

fn family_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Family> {
    Ok(Family {
        id: r.get(0)?,
        client_id: r.get(1)?,
        subject: r.get(2)?,
        current_hash: r.get(3)?,
        exp: r.get(4)?,
        revoked: r.get::<_, i64>(5)? != 0,
    })
}

impl Store for SqliteStore {
    fn revoke(&self, jti: &str, exp: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO revoked (jti, exp) VALUES (?1, ?2)
                 ON CONFLICT (jti) DO UPDATE SET exp = max(exp, excluded.exp)",
                params![jti, exp],
            )
            .map(|_| ())
        })
    }

    fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.query_row("SELECT 1 FROM revoked WHERE jti = ?1", params![jti], |_| {
                Ok(())
            })
            .optional()
            .map(|r| r.is_some())
        })
    }

    fn create_family(&self, f: &Family) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO refresh_families (id, client_id, subject, current_hash, exp, revoked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    f.id,
                    f.client_id,
                    f.subject,
                    f.current_hash,
                    f.exp,
                    i64::from(f.revoked)
                ],
            )
            .map(|_| ())
        })
    }

    fn family(&self, id: &str) -> Result<Option<Family>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, client_id, subject, current_hash, exp, revoked
                 FROM refresh_families WHERE id = ?1",
                params![id],
                family_row,
            )
            .optional()
        })
    }

    fn rotate(
        &self,
        id: &str,
        presented_hash: &str,
        new_hash: &str,
        new_exp: i64,
    ) -> Result<Rotation, StoreError> {
        self.with(|c| {
            // One immediate transaction: the compare and the swap cannot be split by another
            // process, so of two concurrent refreshes exactly one wins.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                "UPDATE refresh_families SET current_hash = ?3, exp = ?4
                 WHERE id = ?1 AND current_hash = ?2 AND revoked = 0",
                params![id, presented_hash, new_hash, new_exp],
            )?;
            let outcome = if changed == 1 {
                Rotation::Rotated
            } else {
                let revoked: Option<i64> = tx
                    .query_row(
                        "SELECT revoked FROM refresh_families WHERE id = ?1",
                        params![id],
                        |r| r.get(0),
                    )
                    .optional()?;
                match revoked {
                    None => Rotation::Unknown,
                    Some(r) if r != 0 => Rotation::Revoked,
                    Some(_) => {
                        tx.execute(
                            "UPDATE refresh_families SET revoked = 1 WHERE id = ?1",
                            params![id],
                        )?;
                        Rotation::ReuseDetected
                    }
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
    }

    fn revoke_family(&self, id: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE refresh_families SET revoked = 1 WHERE id = ?1",
                params![id],
            )
            .map(|_| ())
        })
    }

    fn put_key(&self, k: &StoredKey) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO signing_keys (kid, alg, pkcs8, created, retired) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![k.kid, k.alg, k.pkcs8, k.created, k.retired],
            )
            .map(|_| ())
        })
    }

    fn keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT kid, alg, pkcs8, created, retired FROM signing_keys ORDER BY created, rowid",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredKey {
                    kid: r.get(0)?,
                    alg: r.get(1)?,
                    pkcs8: r.get(2)?,
                    created: r.get(3)?,
                    retired: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    fn retire_key(&self, kid: &str, at: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE signing_keys SET retired = ?2 WHERE kid = ?1 AND retired IS NULL",
                params![kid, at],
            )
            .map(|_| ())
        })
    }

    fn purge_expired(&self, now: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM revoked WHERE exp < ?1", params![now])?;
            c.execute("DELETE FROM refresh_families WHERE exp < ?1", params![now])?;
            Ok(())
        })
    }
}
