//! The wallet's key: a k256 key in a file only its owner can read.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use alloy::signers::local::PrivateKeySigner;

use crate::MeshError;

/// Creates a new random key in `path`, readable only by its owner. Refuses to overwrite.
pub fn create_key(path: &Path) -> Result<PrivateKeySigner, MeshError> {
    let key = PrivateKeySigner::random();
    write_key(path, &key)?;
    Ok(key)
}

/// Stores an existing key (hex) in `path`, readable only by its owner.
pub fn import_key(path: &Path, hex: &str) -> Result<PrivateKeySigner, MeshError> {
    let key: PrivateKeySigner = hex.trim().parse().map_err(|_| {
        MeshError::Wallet("not a hex private key (64 hex digits, 0x optional)".into())
    })?;
    write_key(path, &key)?;
    Ok(key)
}

/// Reads the key in `path`; refuses a file that others can read.
pub fn load_key(path: &Path) -> Result<PrivateKeySigner, MeshError> {
    let metadata = fs::metadata(path).map_err(|e| {
        MeshError::Wallet(format!(
            "cannot read {}: {e}; create a wallet first",
            path.display()
        ))
    })?;
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(MeshError::Wallet(format!(
            "{} is readable by others; run chmod 600 on it",
            path.display()
        )));
    }
    let text = fs::read_to_string(path)
        .map_err(|e| MeshError::Wallet(format!("cannot read {}: {e}", path.display())))?;
    text.trim().parse().map_err(|_| {
        MeshError::Wallet(format!(
            "{} does not hold a hex private key",
            path.display()
        ))
    })
}

fn write_key(path: &Path, key: &PrivateKeySigner) -> Result<(), MeshError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| MeshError::Wallet(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| MeshError::Wallet(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(alloy::hex::encode(key.to_bytes()).as_bytes())
        .map_err(|e| MeshError::Wallet(format!("cannot write {}: {e}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_kept_private_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("smartmesh-wallet-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("key");
        let key = create_key(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_key(&path).unwrap().address(), key.address());
        assert!(
            create_key(&path).is_err(),
            "an existing key is never overwritten"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            load_key(&path)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
        assert!(import_key(&dir.join("other"), "nonsense").is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
