//! Which replica leads: on Postgres, the one holding a session-level advisory lock on a
//! connection of its own. The lock goes with the session, so when the leader dies (its
//! process killed, its connection cut) Postgres releases it and another replica takes over
//! at its next try. On SQLite there is one process, and it always leads.

use sqlx::{AnyConnection, Connection};
use tracing::{info, warn};

use smartmesh_chain::{Backend, Database};

use crate::SettlementError;

/// The advisory lock's key: "smartmsh" in ASCII.
const LOCK_KEY: i64 = 0x736d_6172_746d_7368;

pub(crate) struct Leadership {
    db: Database,
    /// A connection of its own, outside the pool: the lock must never be handed to another
    /// task with a pooled connection.
    conn: Option<AnyConnection>,
    leading: bool,
}

impl Leadership {
    pub(crate) fn new(db: Database) -> Self {
        Self {
            db,
            conn: None,
            leading: false,
        }
    }

    /// Whether this replica leads now: keeps the lock while its connection answers, tries to
    /// take it otherwise.
    pub(crate) async fn check(&mut self) -> Result<bool, SettlementError> {
        if self.db.backend() == Backend::Sqlite {
            return Ok(true);
        }
        let conn = match self.conn.as_mut() {
            Some(conn) => conn,
            None => self.conn.insert(self.db.pool().acquire().await?.detach()),
        };
        let answer = if self.leading {
            conn.ping().await.map(|()| true)
        } else {
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(LOCK_KEY)
                .fetch_one(&mut *conn)
                .await
        };
        match answer {
            Ok(leading) => {
                if leading && !self.leading {
                    info!(target: "smartmesh::leader", "leading: indexing and sending");
                }
                self.leading = leading;
            }
            Err(error) => {
                if self.leading {
                    warn!(target: "smartmesh::leader", %error, "lost the leader's connection; stepping down");
                }
                self.conn = None;
                self.leading = false;
            }
        }
        Ok(self.leading)
    }

    /// Gives the lock up (on shutdown), so another replica takes over at once.
    pub(crate) async fn resign(&mut self) {
        self.leading = false;
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}
