//! The deployment manifest, `deployments/<chainId>.json`: where the contracts live on a chain
//! and from which block to follow them.

use std::{
    fs,
    path::{Path, PathBuf},
};

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use crate::ChainError;

/// The contracts of one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// The chain id.
    pub chain_id: u64,
    /// The SMT token.
    pub token: Address,
    /// The SignedAgent forwarder.
    pub signed_agent: Address,
    /// The SMT TokenNetwork.
    pub token_network: Address,
    /// The ConditionRegistry: when each SmartMesh Condition (a lock's secret or acknowledgment)
    /// was met.
    pub condition_registry: Address,
    /// The block of the first deployment transaction: followers start there.
    pub deploy_block: u64,
}

impl Deployment {
    /// The manifest's path for `chain_id` under `dir` (usually `deployments/`).
    pub fn path(dir: &Path, chain_id: u64) -> PathBuf {
        dir.join(format!("{chain_id}.json"))
    }

    /// Reads a manifest file.
    pub fn read(path: &Path) -> Result<Self, ChainError> {
        let fail = |reason: String| ChainError::Manifest {
            path: path.to_owned(),
            reason,
        };
        let text = fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
    }

    /// Reads the manifest of `chain_id` under `dir`, if there is one.
    pub fn load(dir: &Path, chain_id: u64) -> Result<Option<Self>, ChainError> {
        let path = Self::path(dir, chain_id);
        if !path.exists() {
            return Ok(None);
        }
        let deployment = Self::read(&path)?;
        if deployment.chain_id != chain_id {
            return Err(ChainError::Manifest {
                path,
                reason: format!(
                    "names chain {} but is filed under chain {chain_id}",
                    deployment.chain_id
                ),
            });
        }
        Ok(Some(deployment))
    }

    /// Writes the manifest under `dir` atomically (a temporary file renamed into place), so a
    /// crash never leaves half a manifest. Returns the path written.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, ChainError> {
        let path = Self::path(dir, self.chain_id);
        let fail = |reason: String| ChainError::Manifest {
            path: path.clone(),
            reason,
        };
        fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| fail(e.to_string()))?;
        fs::write(&temporary, text + "\n").map_err(|e| fail(e.to_string()))?;
        fs::rename(&temporary, &path).map_err(|e| fail(e.to_string()))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Deployment {
        Deployment {
            chain_id: 31337,
            token: Address::repeat_byte(1),
            signed_agent: Address::repeat_byte(2),
            token_network: Address::repeat_byte(3),
            condition_registry: Address::repeat_byte(4),
            deploy_block: 7,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("smartmesh-manifest-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn writes_and_reads_back() {
        let dir = scratch("roundtrip");
        assert_eq!(Deployment::load(&dir, 31337).unwrap(), None);
        let path = sample().write(&dir).unwrap();
        assert_eq!(path, dir.join("31337.json"));
        assert_eq!(Deployment::load(&dir, 31337).unwrap(), Some(sample()));
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"tokenNetwork\""), "camelCase keys: {text}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_a_manifest_filed_under_another_chain_or_malformed() {
        let dir = scratch("mismatch");
        let path = sample().write(&dir).unwrap();
        fs::rename(&path, dir.join("1.json")).unwrap();
        assert!(matches!(
            Deployment::load(&dir, 1),
            Err(ChainError::Manifest { .. })
        ));
        fs::write(dir.join("5.json"), "{\"chainId\": 5}").unwrap();
        assert!(matches!(
            Deployment::load(&dir, 5),
            Err(ChainError::Manifest { .. })
        ));
        fs::remove_dir_all(dir).unwrap();
    }
}
