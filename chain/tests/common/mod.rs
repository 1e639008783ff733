//! What the chain crate's tests share: the npm anvil and a fresh database of each backend.

// Each test binary (and the benches) uses a different part of it.
#![allow(dead_code)]

use std::path::PathBuf;

use alloy::node_bindings::{Anvil, AnvilInstance};
use smartmesh_chain::Database;

/// The npm-installed anvil on a free port; killed when the instance drops.
pub(crate) fn spawn_anvil() -> eyre::Result<AnvilInstance> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    eyre::ensure!(
        path.is_file(),
        "{} is missing: run scripts/setup",
        path.display()
    );
    Ok(Anvil::new().path(path).port(0u16).try_spawn()?)
}

/// A fresh database of each backend: a SQLite file, and a new database on the Postgres
/// server when there is one (see [`postgres_server`]).
pub(crate) async fn databases(test: &str) -> eyre::Result<Vec<Database>> {
    let mut databases = vec![sqlite(test).await?];
    databases.extend(postgres(test).await?);
    Ok(databases)
}

/// For the benches: a fresh SQLite database, and one on the Postgres of `DATABASE_URL` only
/// when it is set (a bench measures the backend it is asked to).
pub(crate) async fn bench_databases(bench: &str) -> eyre::Result<Vec<Database>> {
    let mut databases = vec![sqlite(bench).await?];
    if std::env::var("DATABASE_URL").is_ok() {
        databases.extend(postgres(bench).await?);
    }
    Ok(databases)
}

/// A fresh SQLite database for one test.
pub(crate) async fn sqlite(test: &str) -> eyre::Result<Database> {
    let file = std::env::temp_dir().join(format!("smartmesh_{test}_{}.sqlite", std::process::id()));
    for path in [
        file.clone(),
        file.with_extension("sqlite-wal"),
        file.with_extension("sqlite-shm"),
    ] {
        let _ = std::fs::remove_file(path);
    }
    Ok(Database::connect(&format!("sqlite://{}", file.display())).await?)
}

/// The local server a newcomer's `cargo test` finds without any setting.
const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The Postgres server the database tests use: `DATABASE_URL` (which must answer), else the
/// local server at 127.0.0.1:5432 when it answers. `None`, said in one line, when there is
/// none: the test's Postgres half is skipped (`scripts/test` says so loudly).
pub(crate) async fn postgres_server(test: &str) -> eyre::Result<Option<sqlx::AnyPool>> {
    sqlx::any::install_default_drivers();
    let connect = |url: String| async move {
        sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(3))
            .connect(&url)
            .await
    };
    match std::env::var("DATABASE_URL") {
        Ok(url) => Ok(Some(connect(url.clone()).await.map_err(|e| {
            eyre::eyre!("DATABASE_URL={url} does not answer: {e}")
        })?)),
        Err(_) => match connect(LOCAL_POSTGRES.to_owned()).await {
            Ok(pool) => Ok(Some(pool)),
            Err(_) => {
                // Straight to stderr, past the test harness's capture: a skip must be seen.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "{test}: Postgres skipped: DATABASE_URL is unset and nothing answers at 127.0.0.1:5432"
                );
                Ok(None)
            }
        },
    }
}

/// A fresh database of `test`'s own on the Postgres server, migrated by the services' code;
/// `None` when there is no server.
pub(crate) async fn postgres(test: &str) -> eyre::Result<Option<Database>> {
    let Some(admin) = postgres_server(test).await? else {
        return Ok(None);
    };
    // One name per test, dropped and recreated on each run, so runs leave nothing behind but
    // the last one's database. The name is made here from the test's name: nothing external.
    let mut name = format!("sm_{test}").to_lowercase();
    name.truncate(63);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| LOCAL_POSTGRES.to_owned());
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
    Ok(Some(Database::connect(&format!("{base}/{name}")).await?))
}

/// The URL of a fresh database of `test`'s own, for a service process to open.
pub(crate) async fn postgres_url(test: &str) -> eyre::Result<Option<String>> {
    let Some(db) = postgres(test).await? else {
        return Ok(None);
    };
    db.pool().close().await;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| LOCAL_POSTGRES.to_owned());
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
    let mut name = format!("sm_{test}").to_lowercase();
    name.truncate(63);
    Ok(Some(format!("{base}/{name}")))
}

/// Runs `$body(db)` on SQLite as `$sqlite` and on Postgres as `$pg`, with a fresh database
/// of its own on the Postgres server (skipped, in one line, when there is none).
#[macro_export]
macro_rules! on_both_backends {
    ($body:path => $sqlite:ident, $pg:ident) => {
        #[tokio::test]
        async fn $sqlite() -> eyre::Result<()> {
            $body(common::sqlite(stringify!($sqlite)).await?).await
        }

        #[tokio::test]
        async fn $pg() -> eyre::Result<()> {
            let test = concat!(env!("CARGO_CRATE_NAME"), "_", stringify!($pg));
            match common::postgres(test).await? {
                Some(db) => $body(db).await,
                None => Ok(()),
            }
        }
    };
}
