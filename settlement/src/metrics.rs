//! `GET /metrics`: Prometheus text. Counters of what this replica did since it started, and
//! gauges read from the database, which every replica shares.

use std::{
    fmt::Write,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use smartmesh_chain::{Fault, unix_millis};

use axum::{
    Router,
    extract::State,
    http::header::CONTENT_TYPE,
    response::{IntoResponse, Response},
    routing::get,
};
use sqlx::Row;

use crate::{ApiError, AppState};

/// What this replica counted since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Batches answered by `POST /v1/receipts`.
    pub batches: AtomicU64,
    /// Receipts stored (newer than anything held).
    pub receipts_stored: AtomicU64,
    /// Receipts already held.
    pub receipts_known: AtomicU64,
    /// Receipts rejected.
    pub receipts_rejected: AtomicU64,
    /// Backups of phones' own sent proofs stored.
    pub backups_stored: AtomicU64,
    /// Conditions phones handed over to register for them, stored.
    pub conditions_stored: AtomicU64,
    /// Registrations of conditions queued (each pays the watcher its fee).
    pub registrations_queued: AtomicU64,
    /// Lock evidence (`updateClaim` of a proof with locks the closer left out) queued.
    pub evidence_queued: AtomicU64,
    /// Uploaded items whose signatures were checked (the work a batch costs).
    pub items_verified: AtomicU64,
    /// Batches refused unread past their first items, which were all junk.
    pub batches_refused_early: AtomicU64,
    /// `updateClaim` transactions queued.
    pub disputes_queued: AtomicU64,
    /// `settle` transactions queued.
    pub settles_queued: AtomicU64,
    /// Fee escalations of in-flight transactions.
    pub escalations: AtomicU64,
    /// Blocks the indexer committed while this replica led.
    pub indexed_batches: AtomicU64,
    /// Calls to the chain's node that failed, from any loop of this replica.
    pub rpc_errors: AtomicU64,
    /// Database operations that failed, from any loop or request of this replica.
    pub storage_errors: AtomicU64,
    /// Closes that settled unpenalized though a held proof proved the closer lied.
    pub missed_disputes: AtomicU64,
    /// Jobs the dispute engine worked (a look at a job: decided, or found waiting).
    pub jobs_worked: AtomicU64,
    /// The chain's latest block as this replica last read it (0 before it has).
    pub chain_head: AtomicU64,
    rpc: Mutex<RpcState>,
}

/// The outcome of this replica's latest calls to the node.
#[derive(Debug, Default, Clone)]
pub(crate) struct RpcState {
    /// When a call last succeeded (unix ms; 0 never).
    pub(crate) last_ok: i64,
    /// The latest failure and when (unix ms).
    pub(crate) last_error: Option<(String, i64)>,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a failure by what it failed at; an RPC failure is remembered for health.
    pub fn failed(&self, fault: Fault, error: &dyn std::fmt::Display) {
        match fault {
            Fault::Rpc => {
                Self::add(&self.rpc_errors, 1);
                self.rpc
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .last_error = Some((error.to_string(), unix_millis()));
            }
            Fault::Storage => Self::add(&self.storage_errors, 1),
            Fault::Other => {}
        }
    }

    /// A call to the node succeeded; `head`, when it read one, is the chain's latest block.
    pub fn rpc_ok(&self, head: Option<u64>) {
        self.rpc.lock().unwrap_or_else(|e| e.into_inner()).last_ok = unix_millis();
        if let Some(head) = head {
            // A reorg can lower the head: the node's latest word stands.
            self.chain_head.store(head, Ordering::Relaxed);
        }
    }

    pub(crate) fn rpc_state(&self) -> RpcState {
        self.rpc.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Prometheus text: this replica's counters and the shared database's gauges.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"),
))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let m = &state.metrics;
    let mut text = String::new();
    let mut counter = |name: &str, help: &str, value: &AtomicU64| {
        let _ = writeln!(
            text,
            "# HELP smartmesh_{name} {help}\n# TYPE smartmesh_{name} counter\nsmartmesh_{name} {}",
            value.load(Ordering::Relaxed)
        );
    };
    counter(
        "receipt_batches_total",
        "Receipt batches answered.",
        &m.batches,
    );
    counter(
        "receipt_items_verified_total",
        "Uploaded items whose signatures were checked.",
        &m.items_verified,
    );
    counter(
        "receipt_batches_refused_early_total",
        "Batches refused after their first items were all junk.",
        &m.batches_refused_early,
    );
    counter(
        "receipts_stored_total",
        "Receipts stored.",
        &m.receipts_stored,
    );
    counter(
        "receipts_known_total",
        "Receipts already held.",
        &m.receipts_known,
    );
    counter(
        "receipts_rejected_total",
        "Receipts rejected.",
        &m.receipts_rejected,
    );
    counter(
        "backups_stored_total",
        "Sent-proof backups stored.",
        &m.backups_stored,
    );
    counter(
        "conditions_stored_total",
        "Conditions handed over to register, stored.",
        &m.conditions_stored,
    );
    counter(
        "registrations_queued_total",
        "Condition registrations queued.",
        &m.registrations_queued,
    );
    counter(
        "evidence_queued_total",
        "Lock evidence updateClaim transactions queued.",
        &m.evidence_queued,
    );
    counter(
        "disputes_queued_total",
        "updateClaim transactions queued.",
        &m.disputes_queued,
    );
    counter(
        "settles_queued_total",
        "settle transactions queued.",
        &m.settles_queued,
    );
    counter(
        "escalations_total",
        "Fee escalations of in-flight transactions.",
        &m.escalations,
    );
    counter(
        "indexed_batches_total",
        "Block ranges the indexer committed.",
        &m.indexed_batches,
    );
    counter(
        "rpc_errors_total",
        "Calls to the chain's node that failed.",
        &m.rpc_errors,
    );
    counter(
        "storage_errors_total",
        "Database operations that failed.",
        &m.storage_errors,
    );
    counter(
        "jobs_worked_total",
        "Looks the dispute engine took at its jobs.",
        &m.jobs_worked,
    );
    counter(
        "missed_disputes_total",
        "Closes that settled unpenalized though a held proof proved the closer lied.",
        &m.missed_disputes,
    );

    let pool = state.db.pool();
    let channels = sqlx::query("SELECT state, COUNT(*) FROM channels GROUP BY state")
        .fetch_all(pool)
        .await
        .map_err(ApiError::storage)?;
    let _ = writeln!(
        text,
        "# HELP smartmesh_channels Indexed channels by state.\n# TYPE smartmesh_channels gauge"
    );
    for row in channels {
        let phase: String = row.try_get(0).map_err(ApiError::storage)?;
        let count: i64 = row.try_get(1).map_err(ApiError::storage)?;
        let _ = writeln!(text, "smartmesh_channels{{state=\"{phase}\"}} {count}");
    }
    let jobs =
        sqlx::query("SELECT kind, COUNT(*) FROM watcher_jobs WHERE state = 'active' GROUP BY kind")
            .fetch_all(pool)
            .await
            .map_err(ApiError::storage)?;
    let _ = writeln!(
        text,
        "# HELP smartmesh_jobs_active Disputes and settles being worked on.\n# TYPE smartmesh_jobs_active gauge"
    );
    for row in jobs {
        let kind: String = row.try_get(0).map_err(ApiError::storage)?;
        let count: i64 = row.try_get(1).map_err(ApiError::storage)?;
        let _ = writeln!(text, "smartmesh_jobs_active{{kind=\"{kind}\"}} {count}");
    }
    let receipts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM receipts")
        .fetch_one(pool)
        .await
        .map_err(ApiError::storage)?;
    let _ = writeln!(
        text,
        "# HELP smartmesh_receipts_held Latest receipts held.\n# TYPE smartmesh_receipts_held gauge\nsmartmesh_receipts_held {receipts}"
    );
    let indexed = crate::indexer::indexed_block(pool)
        .await
        .map_err(ApiError::storage)?;
    let _ = writeln!(
        text,
        "# HELP smartmesh_indexed_block The last block the indexer committed.\n# TYPE smartmesh_indexed_block gauge\nsmartmesh_indexed_block {}",
        indexed.map_or_else(|| "-1".to_owned(), |block| block.to_string())
    );
    let head = m.chain_head.load(Ordering::Relaxed);
    let _ = writeln!(
        text,
        "# HELP smartmesh_chain_head The chain's latest block as this replica last read it.\n# TYPE smartmesh_chain_head gauge\nsmartmesh_chain_head {head}"
    );
    let _ = writeln!(
        text,
        "# HELP smartmesh_indexer_lag_blocks Blocks between the chain head and the last indexed block.\n# TYPE smartmesh_indexer_lag_blocks gauge\nsmartmesh_indexer_lag_blocks {}",
        head.saturating_sub(indexed.unwrap_or_default())
    );
    if let Some(sender) = &state.sender {
        let _ = writeln!(
            text,
            "# HELP smartmesh_sender_stuck_seconds How long each key's oldest broadcast transaction has waited unmined.\n# TYPE smartmesh_sender_stuck_seconds gauge"
        );
        for (signer, seconds) in sender.stuck().await.map_err(ApiError::storage)? {
            let _ = writeln!(
                text,
                "smartmesh_sender_stuck_seconds{{signer=\"{signer}\"}} {seconds}"
            );
        }
    }
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response())
}
