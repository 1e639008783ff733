//! The registrar: conditions phones handed over (see `crate::conditions`) are registered
//! through the phone's own SignedAgent request, which pays the watcher its fee, when a lock
//! paying the phone is still pending as `min(expiry, settleAt)` comes within the margin
//! (`judge_registration`). Each condition is a row claimed like a job; the transaction is
//! queued in the same database transaction that records it, so a crash neither loses nor
//! doubles a registration.

use alloy::{
    primitives::{Address, B256},
    sol_types::SolValue,
};
use smartmesh_chain::{TxStatus, unix_millis};

use super::millis;
use smartmesh_protocol::{
    AgentRequest, ConditionRegistry, LockList, RegistrationVerdict, judge_registration,
};
use sqlx::{AnyConnection, Row};
use tracing::info;

use super::{DisputeEngine, Queued};
use crate::{
    ChannelPhase, ConditionState, Metrics, SettlementError, conditions::execute_call,
    indexer::lock_lists, load_channel, sql,
};

/// What a look at a condition decided.
struct Outcome {
    state: ConditionState,
    tx_id: Option<i64>,
    /// Wall-clock milliseconds until the next look.
    due_in_ms: i64,
    due_chain: Option<u64>,
    detail: String,
}

impl Outcome {
    fn new(state: ConditionState, due_in_ms: i64, detail: impl Into<String>) -> Self {
        Self {
            state,
            tx_id: None,
            due_in_ms,
            due_chain: None,
            detail: detail.into(),
        }
    }
}

struct Held {
    condition_id: B256,
    channel_id: B256,
    request: Vec<u8>,
    signature: Vec<u8>,
    tx_id: Option<i64>,
    detail: Option<String>,
}

impl DisputeEngine {
    /// Claims one due condition, decides and commits; false when none is due.
    pub(super) async fn register_one(&self, chain_now: u64) -> Result<bool, SettlementError> {
        if self.registrations.registry.is_zero() {
            return Ok(false);
        }
        let lock = self.claim_clause();
        let mut tx = self.db.pool().begin().await?;
        let query = format!(
            "SELECT condition_id, channel_id, request, signature, tx_id, detail FROM watcher_conditions \
             WHERE state IN ('held', 'queued') AND due_at <= $1 AND (due_chain_time IS NULL OR due_chain_time <= $2) \
             ORDER BY due_at LIMIT 1{lock}"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(unix_millis())
            .bind(i64::try_from(chain_now).unwrap_or(i64::MAX))
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let held = Held {
            condition_id: sql::b256(&row, 0)?,
            channel_id: sql::b256(&row, 1)?,
            request: row.try_get(2)?,
            signature: row.try_get(3)?,
            tx_id: row.try_get(4)?,
            detail: row.try_get(5)?,
        };
        let outcome = self.reconcile_condition(&mut tx, &held, chain_now).await?;
        if held.detail.as_deref() != Some(outcome.detail.as_str()) {
            info!(
                target: "smartmesh::registrar",
                condition = %held.condition_id,
                channel = %held.channel_id,
                state = outcome.state.as_str(),
                tx = ?outcome.tx_id,
                "{}",
                outcome.detail
            );
        }
        sqlx::query(
            "UPDATE watcher_conditions SET state = $1, tx_id = $2, due_at = $3, due_chain_time = $4, detail = $5 \
             WHERE condition_id = $6",
        )
        .bind(outcome.state.as_str())
        .bind(outcome.tx_id)
        .bind(unix_millis().saturating_add(outcome.due_in_ms))
        .bind(outcome.due_chain.map(|at| i64::try_from(at).unwrap_or(i64::MAX)))
        .bind(&outcome.detail)
        .bind(held.condition_id.to_vec())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn reconcile_condition(
        &self,
        conn: &mut AnyConnection,
        held: &Held,
        chain_now: u64,
    ) -> Result<Outcome, SettlementError> {
        let recheck = millis(self.config.recheck);
        let in_flight = millis(self.config.in_flight);
        let mut note = String::new();
        if let Some(tx_id) = held.tx_id {
            match self.sender.status_in(conn, tx_id).await? {
                TxStatus::Queued | TxStatus::Pending { .. } => {
                    let mut outcome = Outcome::new(
                        ConditionState::Queued,
                        in_flight,
                        format!("registration in transaction {tx_id}"),
                    );
                    outcome.tx_id = Some(tx_id);
                    return Ok(outcome);
                }
                TxStatus::Mined {
                    succeeded: false, ..
                }
                | TxStatus::Confirmed {
                    succeeded: false, ..
                } => note = format!("transaction {tx_id} reverted; "),
                TxStatus::Failed { reason } => {
                    note = format!("transaction {tx_id} failed: {reason}; ")
                }
                // Mined: the registry says so below.
                TxStatus::Mined { .. } | TxStatus::Confirmed { .. } => {}
            }
        }
        let request =
            AgentRequest::abi_decode(&held.request).map_err(|e| SettlementError::Stored {
                field: "watcher_conditions.request".into(),
                value: e.to_string(),
            })?;
        let registered_at = ConditionRegistry::new(self.registrations.registry, &self.provider)
            .registeredAt(held.condition_id)
            .call()
            .await
            .map_err(|e| SettlementError::Rpc(e.to_string()))?
            .to::<u64>();
        let deadlines = self
            .pending_deadlines(conn, held.channel_id, request.from, held.condition_id)
            .await?;
        let request_deadline = u64::try_from(request.deadline).unwrap_or(u64::MAX);
        let margin = self.config.register_margin.as_secs();
        Ok(
            match judge_registration(
                registered_at,
                &deadlines,
                request_deadline,
                chain_now,
                margin,
            ) {
                RegistrationVerdict::Registered => Outcome::new(
                    ConditionState::Registered,
                    0,
                    format!("{note}registered at {registered_at}"),
                ),
                RegistrationVerdict::TooLate => Outcome::new(
                    ConditionState::Expired,
                    0,
                    format!(
                        "{note}too late at chain time {chain_now}: the locks' deadlines {deadlines:?} or the request's {request_deadline} passed"
                    ),
                ),
                RegistrationVerdict::NotPending => Outcome::new(
                    ConditionState::Held,
                    recheck,
                    format!("{note}no pending lock waits for it"),
                ),
                RegistrationVerdict::WaitUntil(at) => {
                    let mut outcome = Outcome::new(
                        ConditionState::Held,
                        0,
                        format!("{note}a lock waits for it; registering from chain time {at}"),
                    );
                    outcome.due_chain = Some(at);
                    outcome
                }
                RegistrationVerdict::Register => {
                    self.queue_registration(conn, held, &note, &deadlines, recheck)
                        .await?
                }
            },
        )
    }

    async fn queue_registration(
        &self,
        conn: &mut AnyConnection,
        held: &Held,
        note: &str,
        deadlines: &[u64],
        recheck: i64,
    ) -> Result<Outcome, SettlementError> {
        let input = execute_call(&held.request, &held.signature).map_err(|value| {
            SettlementError::Stored {
                field: "watcher_conditions.request".into(),
                value,
            }
        })?;
        let queued = self
            .queue(
                conn,
                self.registrations.signed_agent,
                input,
                Some(self.watcher),
            )
            .await?;
        Ok(match queued {
            Ok(Queued::New(tx_id) | Queued::Adopted(tx_id)) => {
                Metrics::add(&self.metrics.registrations_queued, 1);
                let mut outcome = Outcome::new(
                    ConditionState::Queued,
                    millis(self.config.in_flight),
                    format!(
                        "{note}registering before the deadline {deadlines:?} in transaction {tx_id}"
                    ),
                );
                outcome.tx_id = Some(tx_id);
                outcome
            }
            // Said and tried again: the phone may fund its fee, the key its gas.
            Err(reason) => Outcome::new(
                ConditionState::Held,
                recheck,
                format!("{note}registration not sent: {reason}"),
            ),
        })
    }

    /// `min(expiry, settleAt)` of every lock on `condition_id` that pays `receiver` in the
    /// channel, from what the watcher knows: the partner's proofs the receiver uploaded and,
    /// once the channel is closed, the lists the close and any evidence put on chain.
    async fn pending_deadlines(
        &self,
        conn: &mut AnyConnection,
        channel_id: B256,
        receiver: Address,
        condition_id: B256,
    ) -> Result<Vec<u64>, SettlementError> {
        let Some(channel) = load_channel(&mut *conn, channel_id).await? else {
            return Ok(Vec::new());
        };
        if channel.phase == ChannelPhase::Settled || channel.penalized {
            return Ok(Vec::new());
        }
        let mut lists: Vec<Vec<u8>> = Vec::new();
        let rows = sqlx::query("SELECT locks FROM receipts WHERE channel_id = $1 AND signer <> $2")
            .bind(channel_id.to_vec())
            .bind(receiver.to_string())
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            lists.push(row.try_get::<Option<Vec<u8>>, _>(0)?.unwrap_or_default());
        }
        if channel.phase == ChannelPhase::Closed
            && let Some(on_chain) = lock_lists(conn, channel_id).await?
        {
            // The closer's partner list pays the closer; its own list and the evidence (both
            // the closer's locks) pay the non-closer.
            if channel.closer == Some(receiver) {
                lists.push(on_chain.partner.to_vec());
            } else {
                lists.push(on_chain.own.to_vec());
                lists.push(on_chain.evidence.to_vec());
            }
        }
        let settle_at = match channel.phase {
            ChannelPhase::Closed => channel.settle_at.unwrap_or(u64::MAX),
            _ => u64::MAX,
        };
        let mut deadlines = Vec::new();
        for bytes in lists {
            let list = LockList::decode(&bytes).map_err(|e| SettlementError::Stored {
                field: "lock list".into(),
                value: e.to_string(),
            })?;
            deadlines.extend(
                list.locks()
                    .iter()
                    .filter(|lock| lock.condition_id == condition_id)
                    .map(|lock| lock.expiry.min(settle_at)),
            );
        }
        Ok(deadlines)
    }
}
