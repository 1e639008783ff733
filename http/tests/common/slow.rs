//! A client as a connection flood makes them: it sends the start of a request and never the
//! end of its headers. Shared by the tests of `serve` and of both services.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Connects and sends a request line and one header, never the blank line after them.
pub(crate) async fn slow_client(address: SocketAddr) -> eyre::Result<TcpStream> {
    let mut stream = TcpStream::connect(address).await?;
    stream
        .write_all(b"POST /v1/receipts HTTP/1.1\r\nHost: service\r\nContent-Type: appl")
        .await?;
    Ok(stream)
}

/// Reads until the server closes the connection; what it sent.
pub(crate) async fn until_closed(mut stream: TcpStream) -> eyre::Result<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return Ok(seen),
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Fails unless a slow client of `address` is cut off within 30 s.
pub(crate) async fn is_cut_off(address: SocketAddr) -> eyre::Result<()> {
    let stream = slow_client(address).await?;
    tokio::time::timeout(Duration::from_secs(30), until_closed(stream))
        .await
        .map_err(|_| {
            eyre::eyre!("a connection that never finished its headers was open after 30 s")
        })??;
    Ok(())
}
