//! Private keys come from a file or an environment variable, never from the command line
//! (where `ps` shows them) and never into logs.

use std::path::Path;

use alloy::signers::local::PrivateKeySigner;
use eyre::{WrapErr, bail};

/// Reads a key: the file when given, else the environment variable `env`.
pub(crate) fn load(file: Option<&Path>, env: &str) -> eyre::Result<PrivateKeySigner> {
    let (text, origin) = match file {
        Some(path) => (
            std::fs::read_to_string(path)
                .wrap_err_with(|| format!("cannot read the key file {}", path.display()))?,
            path.display().to_string(),
        ),
        None => match std::env::var(env) {
            Ok(text) => (text, format!("${env}")),
            Err(_) => bail!("no key: pass --key-file FILE (a hex private key) or set {env}"),
        },
    };
    text.trim().parse::<PrivateKeySigner>().map_err(|_| {
        eyre::eyre!("{origin} does not hold a hex private key (64 hex digits, 0x optional)")
    })
}

/// Reads several keys: one per file when files are given, else the comma-separated hex keys
/// of the environment variable `env`.
pub(crate) fn load_many(
    files: &[std::path::PathBuf],
    env: &str,
) -> eyre::Result<Vec<PrivateKeySigner>> {
    if !files.is_empty() {
        return files.iter().map(|file| load(Some(file), env)).collect();
    }
    let text = std::env::var(env)
        .map_err(|_| eyre::eyre!("no key: pass --key-file FILE (once per key) or set {env}"))?;
    text.split(',')
        .enumerate()
        .map(|(index, key)| {
            key.trim()
                .parse::<PrivateKeySigner>()
                .map_err(|_| eyre::eyre!("key {} of ${env} is not a hex private key", index + 1))
        })
        .collect()
}
