//! `smartmesh deploy` against a real anvil: it deploys and writes the manifest; run again, it
//! verifies the code at the manifest's addresses instead of deploying twice; a manifest that
//! names the wrong contracts is refused.

mod common;

use std::process::Command;

use common::{scratch, storage::spawn_anvil, write_key};
use smartmesh_chain::Deployment;

fn deploy(url: &str, dir: &std::path::Path) -> eyre::Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_smartmesh"))
        .args([
            "deploy",
            "--rpc-url",
            url,
            "--min-settle-timeout",
            "60",
            "--private-key-file",
        ])
        .arg(dir.join("deployer.key"))
        .arg("--deployments-dir")
        .arg(dir.join("deployments"))
        .output()?)
}

#[tokio::test]
async fn deploy_writes_a_manifest_then_verifies_it() -> eyre::Result<()> {
    let anvil = spawn_anvil()?;
    let dir = scratch("deploy")?;
    write_key(&dir, "deployer.key", &anvil.keys()[0].clone().into())?;

    let first = deploy(&anvil.endpoint(), &dir)?;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let manifest = Deployment::load(&dir.join("deployments"), anvil.chain_id())?.expect("written");
    assert!(String::from_utf8(first.stdout)?.contains("deployed from block"));

    let again = deploy(&anvil.endpoint(), &dir)?;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8(again.stdout)?.contains("already deployed and verified"));
    assert_eq!(
        Deployment::load(&dir.join("deployments"), anvil.chain_id())?,
        Some(manifest.clone()),
        "nothing deployed twice"
    );

    // A manifest naming the wrong contract is refused, with what to do.
    Deployment {
        token: manifest.token_network,
        ..manifest
    }
    .write(&dir.join("deployments"))?;
    let refused = deploy(&anvil.endpoint(), &dir)?;
    assert!(!refused.status.success());
    let stderr = String::from_utf8(refused.stderr)?;
    assert!(stderr.contains("move it away to deploy anew"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
