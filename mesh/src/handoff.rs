//! The file hand-off behind the [`Transport`] interface: what a phone sends a peer is written,
//! in the `smr1` text form that also fits a QR code, to `<dir>/to-<peer>/`; what it receives
//! is read from `<dir>/inbox/`, where files arrive named `<sender>-<anything>.smr` (carried by
//! hand, Bluetooth file transfer, a QR scan saved to a file). A file leaves the inbox only once
//! it was read whole.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use alloy::primitives::Address;
use smartmesh_protocol::channel::ChannelMessage;

use crate::transport::{Transport, TransportError};

/// A transport of files in a directory.
#[derive(Debug)]
pub struct FileTransport {
    local: Address,
    dir: PathBuf,
    peers: Vec<Address>,
    written: AtomicU64,
}

impl FileTransport {
    /// The hand-off of `local` in `dir`, toward `peers`.
    pub fn new(local: Address, dir: &Path, peers: Vec<Address>) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join("inbox"))?;
        for peer in &peers {
            std::fs::create_dir_all(dir.join(format!("to-{peer}")))?;
        }
        Ok(Self {
            local,
            dir: dir.to_owned(),
            peers,
            written: AtomicU64::new(0),
        })
    }

    /// Where the files for `peer` are written.
    pub fn outgoing(&self, peer: Address) -> PathBuf {
        self.dir.join(format!("to-{peer}"))
    }

    /// Where files from peers are read.
    pub fn inbox(&self) -> PathBuf {
        self.dir.join("inbox")
    }

    /// The next file in the inbox, oldest name first, if one is there.
    pub fn try_recv(&self) -> Option<(Address, Vec<u8>)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.inbox())
            .ok()?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "smr"))
            .collect();
        names.sort();
        for path in names {
            let name = path.file_name()?.to_str()?.to_owned();
            let read = std::fs::read_to_string(&path).ok().and_then(|text| {
                let from: Address = name.split('-').next()?.parse().ok()?;
                let message = ChannelMessage::from_text(text.trim()).ok()?;
                Some((from, message.encode().ok()?))
            });
            match read {
                Some(message) => {
                    let _ = std::fs::remove_file(&path);
                    return Some(message);
                }
                // Not a message from a named sender: set aside, never taken for one.
                None => {
                    let _ = std::fs::rename(&path, path.with_extension("refused"));
                }
            }
        }
        None
    }
}

impl Transport for FileTransport {
    fn local(&self) -> Address {
        self.local
    }

    async fn send(&self, peer: Address, bytes: Vec<u8>) -> Result<(), TransportError> {
        if !self.peers.contains(&peer) {
            return Err(TransportError::Unreachable(peer));
        }
        let text = ChannelMessage::decode(&bytes)
            .and_then(|message| message.to_text())
            .map_err(|_| TransportError::Closed)?;
        let n = self.written.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let name = format!("{}-{nanos:020}-{n:06}.smr", self.local);
        let path = self.outgoing(peer).join(&name);
        // Written aside and renamed: a half-written file is never handed over.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, text + "\n")
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|_| TransportError::Closed)
    }

    fn reachable(&self) -> Vec<Address> {
        self.peers.clone()
    }

    async fn recv(&self) -> Option<(Address, Vec<u8>)> {
        loop {
            if let Some(message) = self.try_recv() {
                return Some(message);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
