//! `serve` over real TCP connections, as a flood of slow clients would use it: a client that
//! never finishes its headers is cut off after the header timeout, no more than the cap of
//! connections is served at once, and a shutdown lets the request in flight finish.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

#[allow(dead_code)]
#[path = "common/slow.rs"]
mod slow;

use axum::{Router, routing::get};
use slow::{slow_client, until_closed};
use smartmesh_http::{ApiLimits, serve};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::oneshot,
};

fn limits(header_timeout: Duration, max_connections: usize) -> ApiLimits {
    ApiLimits {
        header_timeout,
        max_connections,
        ..ApiLimits::default()
    }
}

/// Serves a router answering `GET /` (after `delay`) until the returned sender fires.
async fn start(
    limits: ApiLimits,
    delay: Duration,
) -> eyre::Result<(
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let router = Router::new().route(
        "/",
        get(move || async move {
            tokio::time::sleep(delay).await;
            "ok"
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router, limits, async {
        let _ = stopped.await;
    }));
    Ok((address, stop, task))
}

async fn fetch(address: SocketAddr) -> eyre::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await?;
    Ok(String::from_utf8(until_closed(stream).await?)?)
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_are_closed() -> eyre::Result<()> {
    let (address, stop, task) =
        start(limits(Duration::from_millis(500), 1_024), Duration::ZERO).await?;
    let mut slow = Vec::new();
    for _ in 0..300 {
        slow.push(slow_client(address).await?);
    }
    let closed = tokio::time::timeout(
        Duration::from_secs(30),
        futures::future::join_all(slow.into_iter().map(until_closed)),
    )
    .await
    .map_err(|_| eyre::eyre!("slow connections were still open after 30 s"))?;
    for seen in closed {
        let seen = String::from_utf8_lossy(&seen?).into_owned();
        assert!(!seen.contains("200 OK"), "{seen}");
    }
    assert!(
        fetch(address).await?.contains("200 OK"),
        "a normal client is served"
    );
    let _ = stop.send(());
    task.await??;
    Ok(())
}

#[tokio::test]
async fn no_more_connections_than_the_cap_are_served_at_once() -> eyre::Result<()> {
    let (address, stop, task) =
        start(limits(Duration::from_millis(800), 4), Duration::ZERO).await?;
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(slow_client(address).await?);
    }
    // Give the server the time to accept all four (the cap's worth).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let closes = tokio::spawn(async move {
        let mut first = None;
        for stream in slow {
            until_closed(stream).await?;
            first.get_or_insert_with(Instant::now);
        }
        Ok::<_, eyre::Report>(first)
    });
    let answer = fetch(address).await?;
    let answered = Instant::now();
    let first_close = closes.await??.expect("the slow connections were closed");
    assert!(answer.contains("200 OK"), "{answer}");
    assert!(
        answered >= first_close,
        "the fifth connection waited for a slot: answered before any of the four was cut"
    );
    let _ = stop.send(());
    task.await??;
    Ok(())
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight() -> eyre::Result<()> {
    let (address, stop, task) = start(ApiLimits::default(), Duration::from_millis(500)).await?;
    let request = tokio::spawn(fetch(address));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop.send(());
    let answer = request.await??;
    assert!(answer.contains("200 OK"), "{answer}");
    task.await??;
    assert!(
        TcpStream::connect(address).await.is_err(),
        "no longer listening"
    );
    Ok(())
}
