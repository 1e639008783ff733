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

/// A fresh database of each backend: a SQLite file, and a new database on the Postgres of
/// `DATABASE_URL` when it is set.
pub(crate) async fn databases(test: &str) -> eyre::Result<Vec<Database>> {
    // One name per test, dropped and recreated on each run, so runs leave nothing behind
    // but the last one's database.
    let unique = test.to_owned();
    let mut databases = vec![sqlite(&unique).await?];
    match std::env::var("DATABASE_URL") {
        Ok(admin_url) => {
            // The admin connection only creates databases: it runs no migrations.
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&admin_url).await?;
            let name = format!("smartmesh_{unique}").to_lowercase();
            // The name is made here from the test's name: nothing external.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&admin)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await?;
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(base, _)| base);
            databases.push(Database::connect(&format!("{base}/{name}")).await?);
        }
        Err(_) => eprintln!("DATABASE_URL is not set: {test} runs on SQLite only"),
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

/// The database `#[sqlx::test]` made for one test, migrated by the watcher's own code.
pub(crate) async fn postgres(options: &sqlx::postgres::PgConnectOptions) -> eyre::Result<Database> {
    Ok(Database::connect(&postgres_url(options)).await?)
}

/// Runs `$body(db)` on SQLite as `$sqlite` and on Postgres as `$pg`, a `#[sqlx::test]` that
/// gets a database of its own on the server at `DATABASE_URL`.
#[macro_export]
macro_rules! on_both_backends {
    ($body:path => $sqlite:ident, $pg:ident) => {
        #[tokio::test]
        async fn $sqlite() -> eyre::Result<()> {
            $body(common::sqlite(stringify!($sqlite)).await?).await
        }

        #[sqlx::test(migrations = false)]
        async fn $pg(
            _: sqlx::postgres::PgPoolOptions,
            options: sqlx::postgres::PgConnectOptions,
        ) -> eyre::Result<()> {
            $body(common::postgres(&options).await?).await
        }
    };
}

/// The URL of the database `#[sqlx::test]` made for a test.
pub(crate) fn postgres_url(options: &sqlx::postgres::PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}
