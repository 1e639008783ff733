//! The ABIs committed under `abi/`, which a phone build binds with no compiler, are the ABIs
//! of the contracts as they compile now: a contract change that alters its interface fails
//! here until `scripts/abi` writes them again.

#![cfg(feature = "deploy")]

use std::path::PathBuf;

const CONTRACTS: [&str; 4] = [
    "SmartMeshToken",
    "SignedAgent",
    "TokenNetwork",
    "ConditionRegistry",
];

fn committed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("abi/{name}.json"))
}

fn compiled(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("SMARTMESH_ARTIFACTS")).join(format!("{name}.sol/{name}.json"));
    let artifact: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the build's artifact"))
            .expect("an artifact is JSON");
    artifact["abi"].clone()
}

#[test]
fn the_committed_abis_are_those_of_a_fresh_compile() {
    let write = std::env::var_os("SMARTMESH_WRITE_ABI").is_some();
    let mut drifted = Vec::new();
    for name in CONTRACTS {
        let fresh = compiled(name);
        assert!(
            fresh.as_array().is_some_and(|abi| !abi.is_empty()),
            "{name}: an ABI"
        );
        if write {
            let text = serde_json::to_string_pretty(&fresh).expect("JSON") + "\n";
            std::fs::write(committed(name), text).expect("abi/ is writable");
            continue;
        }
        let held: serde_json::Value = std::fs::read_to_string(committed(name))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        if held != fresh {
            drifted.push(name);
        }
    }
    assert!(
        drifted.is_empty(),
        "the committed ABIs of {drifted:?} differ from a fresh compile of contracts/src: run scripts/abi and commit protocol/abi/"
    );
}
