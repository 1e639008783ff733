//! `smartmesh`: the command that runs SmartMesh's services. `smartmesh settlement` runs the
//! settlement watcher, `smartmesh relayer` the relayer; the one-command local stack and the
//! wallet commands come with their issue.

mod common;
mod keys;
mod relayer;
mod settlement;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "smartmesh",
    version,
    about = "SmartMesh: phones pay in SMT offline and settle on Ethereum later"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the settlement watcher: receipts API, chain indexer, disputes and settles.
    Settlement(settlement::Args),
    /// Run the relayer: quotes, relays users' signed requests, pays the gas, earns SMT.
    Relayer(relayer::Args),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Settlement(args) => settlement::run(args).await,
        Command::Relayer(args) => relayer::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("smartmesh: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
