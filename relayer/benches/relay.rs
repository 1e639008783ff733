//! Relay throughput against a local anvil: accepted relay requests per second through the real
//! HTTP API (validate, simulate against the pending state, queue, sign, broadcast), with the
//! latency from a request's arrival to its transaction's broadcast; and the gas the
//! SignedAgent path adds to the same call sent directly.
//!
//! `cargo bench -p smartmesh-relayer --bench relay` (SQLite; `DATABASE_URL` for Postgres).

#[path = "../../protocol/tests/common/mod.rs"]
mod stack;
#[path = "../../chain/tests/common/mod.rs"]
mod storage;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{
    primitives::{Address, Bytes, U256, keccak256, utils::parse_ether},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
    transports::http::reqwest,
};
use smartmesh_chain::{Deployment, SenderConfig, connect};
use smartmesh_protocol::{AgentRequest, SmartMeshToken, agent_domain, sign_typed};
use smartmesh_relayer::{
    ApiLimits, Quote, RateSource, RelayPolicy, RelayRequest, Relayer, RelayerConfig,
};
use stack::Stack;
use tokio::{net::TcpListener, sync::Semaphore};

const USERS: usize = 500;
const PER_USER: u64 = 2;
const CONCURRENCY: usize = 64;
const KEYS: [usize; 4] = [6, 7, 8, 9];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A signed relay body for `user`'s `nonce`th transfer, from its quote.
fn relay_body(
    stack: &Stack,
    user: &PrivateKeySigner,
    quote: &Quote,
    data: &Bytes,
    nonce: u64,
) -> String {
    let request = AgentRequest {
        from: user.address(),
        agent: quote.agent,
        target: stack.token,
        data: data.clone(),
        gas: quote.gas,
        feeToken: stack.token,
        fee: quote.fee,
        nonce: U256::from(nonce),
        deadline: U256::from(u64::MAX),
    };
    let signature = sign_typed(user, &request, &agent_domain(stack.chain_id, stack.agent));
    serde_json::to_string(&RelayRequest {
        quote_id: quote.quote_id,
        request: request.into(),
        signature: Bytes::copy_from_slice(signature.as_bytes()),
    })
    .expect("serializes")
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    // Postgres when `DATABASE_URL` is set (the last of the fresh databases), else SQLite.
    let db = storage::bench_databases("bench_relay")
        .await?
        .pop()
        .expect("SQLite at least");
    let backend = db.backend().to_string();
    let keys: Vec<PrivateKeySigner> = KEYS.iter().map(|i| stack.keys[*i].clone()).collect();
    // `RELAY_CHECKS` overrides: by default the relayer's default on SQLite, and 4 on
    // Postgres, where anvil answered fastest 4 at a time on this machine.
    let max_concurrent_checks = match std::env::var("RELAY_CHECKS") {
        Ok(checks) => checks.parse()?,
        Err(_) if backend == "Postgres" => 4,
        Err(_) => RelayPolicy::default().max_concurrent_checks,
    };
    let config = RelayerConfig {
        policy: RelayPolicy {
            rate: RateSource::fixed("1000")?,
            quote_ttl: Duration::from_secs(600),
            max_concurrent_checks,
            ..RelayPolicy::default()
        },
        sender: SenderConfig {
            confirmations: 1,
            ..SenderConfig::default()
        },
        limits: ApiLimits {
            rate_per_second: 1_000_000,
            burst: 1_000_000,
            ..ApiLimits::default()
        },
        poll_interval: Duration::from_millis(5),
        follow_interval: Duration::from_millis(500),
    };
    let deployment = Deployment {
        chain_id: stack.chain_id,
        token: stack.token,
        signed_agent: stack.agent,
        token_network: stack.network,
        condition_registry: stack.registry,
        deploy_block: 0,
    };
    let relayer = Relayer::new(
        connect(stack.anvil.endpoint_url().as_ref())?,
        db.clone(),
        deployment,
        keys,
        config,
    )
    .await?;
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(relayer.run(listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    // Users with SMT and no ETH, their quotes and signed requests: made before the clock.
    let data = Bytes::from(
        SmartMeshToken::transferCall {
            to: Address::repeat_byte(0xee),
            value: U256::from(1),
        }
        .abi_encode(),
    );
    let token = stack.token(&stack.keys[0]);
    let mut users = Vec::with_capacity(USERS);
    let mut pending = Vec::new();
    for i in 0..USERS {
        let user = PrivateKeySigner::from_bytes(&keccak256(format!("bench user {i}")))?;
        pending.push(
            token
                .transfer(user.address(), parse_ether("10")?)
                .send()
                .await?,
        );
        users.push(user);
    }
    for tx in pending {
        tx.get_receipt().await?;
    }
    // A user's requests come one after the other (its first long answered when its second
    // comes), as a phone sends them; `RELAY_USER_BURSTS=1` sends each user's together, which
    // the relayer checks one at a time (each after the one before it).
    let bursts = std::env::var("RELAY_USER_BURSTS").is_ok_and(|value| value == "1");
    let mut rounds: Vec<Vec<String>> = vec![Vec::new(); PER_USER as usize];
    for user in &users {
        let quote: Quote = client
            .post(format!("{url}/v1/quote"))
            .header("content-type", "application/json")
            .body(
                serde_json::json!({"from": user.address(), "target": stack.token, "data": data})
                    .to_string(),
            )
            .send()
            .await?
            .json()
            .await?;
        for nonce in 1..=PER_USER {
            rounds[nonce as usize - 1].push(relay_body(&stack, user, &quote, &data, nonce));
        }
    }
    let bodies: Vec<String> = if bursts {
        (0..USERS)
            .flat_map(|user| rounds.iter().map(move |round| round[user].clone()))
            .collect()
    } else {
        rounds.concat()
    };

    let total = bodies.len();
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for body in bodies {
        let (client, url, gate) = (client.clone(), url.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let sent_at = now_ms();
            let response = client
                .post(format!("{url}/v1/relay"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            eyre::ensure!(response.status().is_success(), "{}", response.text().await?);
            let answer: serde_json::Value = response.json().await?;
            eyre::Ok((answer["id"].as_i64().unwrap_or_default(), sent_at))
        }));
    }
    let mut arrivals = std::collections::HashMap::new();
    for task in tasks {
        let (id, sent_at) = task.await??;
        arrivals.insert(id, sent_at);
    }
    let accepted = start.elapsed();
    // Every accepted request broadcast: its transaction has an attempt.
    let broadcast = loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM relays r WHERE EXISTS (SELECT 1 FROM sender_attempts a WHERE a.transaction_id = r.tx_id)",
        )
        .fetch_one(db.pool())
        .await?;
        if done as usize == total {
            break start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT r.id, MIN(a.sent_ms) FROM relays r JOIN sender_attempts a ON a.transaction_id = r.tx_id GROUP BY r.id",
    )
    .fetch_all(db.pool())
    .await?;
    let mut latencies: Vec<i64> = rows
        .iter()
        .filter_map(|(id, sent)| arrivals.get(id).map(|arrived| sent - arrived))
        .collect();
    latencies.sort_unstable();
    println!(
        "{backend}, {} keys, {CONCURRENCY} concurrent clients, {max_concurrent_checks} checks at once, {total} relays of SMT transfers by {USERS} users{}:",
        KEYS.len(),
        if bursts {
            ", each user's requests at once"
        } else {
            ""
        }
    );
    println!(
        "  accepted: {:.0} relays/s ({total} in {:.2} s); all broadcast after {:.2} s: {:.0} relays/s",
        total as f64 / accepted.as_secs_f64(),
        accepted.as_secs_f64(),
        broadcast.as_secs_f64(),
        total as f64 / broadcast.as_secs_f64()
    );
    println!(
        "  request to broadcast: p50 {} ms, p99 {} ms, max {} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );

    // Gas of the SignedAgent path against the same call sent directly.
    let direct_sender = &stack.keys[1];
    stack
        .fund(direct_sender.address(), parse_ether("10")?)
        .await?;
    let direct = stack
        .token(direct_sender)
        .transfer(Address::repeat_byte(0xee), U256::from(1))
        .send()
        .await?
        .get_receipt()
        .await?
        .gas_used;
    loop {
        let settled: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM relays WHERE settled_at IS NOT NULL")
                .fetch_one(db.pool())
                .await?;
        if settled as usize == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM relays WHERE succeeded = 0")
        .fetch_one(db.pool())
        .await?;
    println!(
        "  mined: {} succeeded, {failed} failed",
        total as i64 - failed
    );
    let spent: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT r.gas_used, q.estimated_gas FROM relays r JOIN relay_quotes q ON q.id = r.quote_id \
         WHERE r.gas_used IS NOT NULL",
    )
    .fetch_all(db.pool())
    .await?;
    let mut relayed: Vec<u64> = spent.iter().map(|(gas, _)| *gas as u64).collect();
    relayed.sort_unstable();
    let mut quoted: Vec<f64> = spent
        .iter()
        .map(|(gas, estimated)| *estimated as f64 / *gas as f64)
        .collect();
    quoted.sort_by(f64::total_cmp);
    if let (Some(least), Some(most)) = (quoted.first(), quoted.last()) {
        println!("  quoted gas over gas used: {least:.2}x to {most:.2}x");
    }
    if !relayed.is_empty() {
        let median = relayed[relayed.len() / 2];
        println!(
            "  SMT transfer gas: direct {direct}; relayed median {median} ({:.2}x), least {} ({:.2}x), most {} ({:.2}x: \
             a user's first nonce word and the key's first fee)",
            median as f64 / direct as f64,
            relayed[0],
            relayed[0] as f64 / direct as f64,
            relayed[relayed.len() - 1],
            relayed[relayed.len() - 1] as f64 / direct as f64
        );
    }
    let _ = stop.send(());
    running.await??;
    Ok(())
}
