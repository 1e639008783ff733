//! `smartmesh`: SmartMesh from a terminal. `dev` runs the whole stack on one machine;
//! `deploy`, `settlement` and `relayer` run the pieces on any chain; the wallet commands do
//! what a phone does: pay and receive offline, sync receipts, and use the chain through the
//! relayer without holding ETH.

/// Prints a line to standard output, ignoring a reader that went away: a command whose
/// output pipe closes (`smartmesh channel open ... | head -1`) finishes what it started
/// instead of dying between two steps.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod common;
mod deploy;
mod dev;
mod keys;
mod locks;
mod node;
mod relayer;
mod settlement;
mod sim;
mod wallet;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "smartmesh",
    version,
    about = "SmartMesh: phones pay each other in SMT with no internet, and settle on Ethereum later",
    after_help = "Start here: `smartmesh dev` runs a local chain, the contracts, the relayer and the \
                  watcher, and funds the wallets alice, brandon and carol; then try `smartmesh wallet show \
                  --wallet alice`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole stack locally: anvil, the contracts, demo wallets, relayer and watcher.
    Dev(dev::Args),
    /// Deploy the contracts to a chain and write deployments/<chainId>.json (or verify the
    /// contracts an existing manifest names).
    Deploy(deploy::Args),
    /// Run the settlement watcher: receipts API, chain indexer, disputes and settles.
    Settlement(settlement::Args),
    /// Run the relayer: quotes, relays users' signed requests, pays the gas, earns SMT.
    Relayer(relayer::Args),
    /// Create, import or show a wallet.
    Wallet {
        #[command(subcommand)]
        command: wallet::WalletCommand,
        #[command(flatten)]
        wallet: wallet::WalletArgs,
    },
    /// Open, fund, close, settle or inspect a channel (through the relayer: no ETH needed).
    Channel {
        #[command(subcommand)]
        command: wallet::ChannelCommand,
        #[command(flatten)]
        wallet: wallet::WalletArgs,
    },
    /// Pay over a channel, offline: prints (or writes) the signed payment to hand over.
    Pay(wallet::PayArgs),
    /// Accept a payment handed over (a file or the `smr1...` text), offline.
    Receive(wallet::ReceiveArgs),
    /// Keep a hashlock's secret you learned and tell the payer (a message to hand over), so
    /// it unlocks; the watcher registers it on chain in time if the payer does not.
    Reveal(locks::RevealArgs),
    /// Pay one of your pending locks: its amount moves into what you paid.
    Unlock(locks::LockArgs),
    /// Remove one of your pending locks unpaid after its expiry (reads the registry first).
    Expire(locks::LockArgs),
    /// Run this wallet's node: pay, receive, mediate and forward over the peer-to-peer
    /// transport, and sync to the watcher whenever it is reachable.
    Node(node::Args),
    /// Simulate a whole mesh of phones in virtual time on the real wallets and contracts:
    /// prints a table, writes figures.json and plots, checks every honest phone on chain.
    Sim(sim::Args),
    /// The route and fees a payment to someone would take (asks the running node).
    Route(node::RouteArgs),
    /// The mediated transfers this wallet takes part in, and how they ended.
    Transfers(node::TransfersArgs),
    /// Send a file through the running node, paying the phones that relay it.
    Send(node::SendArgs),
    /// The running node's data sessions, and what it earned relaying.
    Sessions(node::SessionsArgs),
    /// Upload received payments to the watcher, which then guards them while you are offline.
    Sync {
        #[command(flatten)]
        wallet: wallet::WalletArgs,
    },
    /// SMT and ETH of the dev stack's wallets, watcher and relayer.
    Balances {
        #[command(flatten)]
        wallet: wallet::WalletArgs,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Services say what they do; wallet commands speak only when something is wrong.
    let level = match cli.command {
        Command::Settlement(_) | Command::Relayer(_) | Command::Node(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Deploy(args) => deploy::run(args).await,
        Command::Settlement(args) => settlement::run(args).await,
        Command::Relayer(args) => relayer::run(args).await,
        Command::Wallet { command, wallet } => wallet::wallet(command, wallet).await,
        Command::Channel { command, wallet } => wallet::channel_command(command, wallet).await,
        Command::Pay(args) => wallet::pay(args).await,
        Command::Receive(args) => wallet::receive(args).await,
        Command::Reveal(args) => locks::reveal(args).await,
        Command::Unlock(args) => locks::unlock(args).await,
        Command::Expire(args) => locks::expire(args).await,
        Command::Node(args) => node::run(args).await,
        Command::Sim(args) => sim::run(args).await,
        Command::Route(args) => node::route(args).await,
        Command::Transfers(args) => node::transfers(args).await,
        Command::Send(args) => node::send(args).await,
        Command::Sessions(args) => node::sessions(args).await,
        Command::Sync { wallet } => wallet::sync(wallet).await,
        Command::Balances { wallet } => wallet::balances(wallet).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "smartmesh: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
