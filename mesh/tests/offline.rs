//! A wallet told it is offline calls no service, even one configured, and says so; its rules
//! that read the chain when they can then wait (a removal needing a registry read is held).

mod common;

use alloy::primitives::B256;
use smartmesh_mesh::{KEY_FILE, Mesh, MeshConfig, MeshError, create_key};

#[tokio::test]
async fn an_offline_wallet_calls_no_service_and_says_why() -> eyre::Result<()> {
    let dir = std::env::temp_dir().join(format!("smartmesh-offline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    create_key(&dir.join(KEY_FILE))?;
    // Services "configured" at a port nothing listens on: offline, none is even tried.
    let config = MeshConfig {
        rpc_url: Some("http://127.0.0.1:9".into()),
        watcher_url: Some("http://127.0.0.1:9".into()),
        relayer_url: Some("http://127.0.0.1:9".into()),
        ..common::config()
    };
    let mesh = Mesh::open(&dir, config).await?;
    assert!(mesh.is_online() && mesh.reaches_chain() && mesh.reaches_watcher());
    mesh.set_online(false);
    assert!(!(mesh.reaches_chain() || mesh.reaches_relayer() || mesh.reaches_watcher()));
    assert!(matches!(
        mesh.balances().await,
        Err(MeshError::Offline("chain"))
    ));
    assert!(matches!(
        mesh.sync().await,
        Err(MeshError::Offline("watcher"))
    ));
    assert!(matches!(
        mesh.register_secrets(vec![B256::ZERO]).await,
        Err(MeshError::Offline("relayer"))
    ));
    assert_eq!(
        mesh.balances().await.map(|_| ()).unwrap_err().to_string(),
        "offline: the chain cannot be reached now"
    );
    // Online again, the call goes out (and fails on the network, not as offline).
    mesh.set_online(true);
    assert!(matches!(mesh.balances().await, Err(MeshError::Network(_))));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
