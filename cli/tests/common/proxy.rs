//! A TCP proxy in front of the node that a test can cut and restore: the RPC "gone" for a
//! while, as a network outage makes it.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::broadcast,
};

pub(crate) struct Proxy {
    pub(crate) url: String,
    cut: Arc<AtomicBool>,
    drop_all: broadcast::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards a free local port to `target`.
    pub(crate) async fn start(target: SocketAddr) -> eyre::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let cut = Arc::new(AtomicBool::new(false));
        let (drop_all, _) = broadcast::channel(1);
        let task = {
            let (cut, drop_all) = (cut.clone(), drop_all.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let mut dropped = drop_all.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = dropped.recv() => {}
                        }
                    });
                }
            })
        };
        Ok(Self {
            url,
            cut,
            drop_all,
            task,
        })
    }

    /// Drops every connection and every new one until [`Proxy::restore`].
    pub(crate) fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = self.drop_all.send(());
    }

    pub(crate) fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
