//! Storage for the services: SQLite (a file, the default) or Postgres (several replicas), one
//! schema in two dialects under `migrations/`. Queries use `$1`-style parameters, which both
//! backends accept through sqlx's `Any` driver.

use sqlx::{
    AnyPool, Executor,
    any::{AnyPoolOptions, install_default_drivers},
    migrate::Migrator,
};

use crate::ChainError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database engine a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A local SQLite file.
    Sqlite,
    /// A Postgres server.
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "Postgres",
        })
    }
}

/// A connection pool with the schema migrated.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

impl Database {
    /// Connects to `url` (`sqlite://FILE`, created if missing, or `postgres://...`) and applies
    /// the migrations of its backend.
    pub async fn connect(url: &str) -> Result<Self, ChainError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(ChainError::DatabaseUrl(url.to_owned()));
        };
        let mut options = AnyPoolOptions::new();
        let url = match backend {
            Backend::Sqlite => {
                // Create the file on first use; wait rather than fail while another connection
                // holds the write lock; WAL lets readers run beside the writer.
                options = options
                    .max_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;")
                                .await?;
                            Ok(())
                        })
                    })
                    .before_acquire(|conn, _| Box::pin(outside_any_transaction(conn)));
                with_sqlite_create(url)
            }
            Backend::Postgres => {
                options = options.max_connections(8);
                url.to_owned()
            }
        };
        let pool = options.connect(&url).await?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend })
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// Whether a SQLite connection may be handed out: it must not be left inside a transaction.
/// A write that failed (a full disk) can leave the connection in a broken transaction that
/// sqlx's rollback did not end; the next `BEGIN` then becomes a savepoint inside it, whose
/// "commit" reaches nothing durable. Such a connection is discarded (closing it rolls it
/// back) and the pool opens a fresh one.
async fn outside_any_transaction(conn: &mut sqlx::AnyConnection) -> Result<bool, sqlx::Error> {
    match conn.execute("BEGIN").await {
        Ok(_) => {
            conn.execute("ROLLBACK").await?;
            Ok(true)
        }
        Err(error) => {
            tracing::error!(target: "smartmesh::store", %error, "a SQLite connection was left inside a transaction: discarded");
            Ok(false)
        }
    }
}

/// Adds `mode=rwc` (read, write, create) to a SQLite URL that names no mode.
fn with_sqlite_create(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}
