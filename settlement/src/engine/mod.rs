//! The dispute engine, the settler and the registrar of conditions ([`registrar`]). Each closed channel the watcher guards gets a
//! `dispute` job and a `settle` job, reconciled against the indexed chain until the channel
//! is settled: a job looks at the channel, the best proof held and its own transaction in
//! flight, and decides what to do next. Nothing is sent that a simulation says would revert,
//! and a transaction is queued in the same database transaction that records it in the job,
//! so a crash can neither lose a dispute nor send it twice. Replicas sharing a Postgres claim
//! jobs with `FOR UPDATE SKIP LOCKED`.
//!
//! A close is judged against the best closer-signed proof held with its lock list
//! (`judge_close`): a proof above the claim is a lie, disputed at once; a proof whose locks the
//! closer's declaration leaves out is submitted as lock evidence, so the under-declaration is
//! penalized at settle.

mod registrar;

use std::{future::Future, sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use smartmesh_chain::{
    Backend, Backoff, ChainError, Database, TxRequest, TxSender, TxStatus, unix_millis,
};
use smartmesh_protocol::{
    CloseSeen, CloseVerdict, HeldCloserProof, LockList, SignedProof, TokenNetwork, Watch,
    judge_close,
};
use sqlx::{AnyConnection, Row};
use tokio::sync::Notify;
use tracing::{error, info};

/// The longest pause between retries of a failing pass.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

use crate::{ChannelPhase, ChannelRow, Metrics, Registrations, SettlementError, load_channel, sql};

/// Settings of the [`DisputeEngine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How soon a job that found nothing to do looks again (a receipt for the channel, or a
    /// new block range from the indexer, wakes it sooner).
    pub recheck: Duration,
    /// How soon a job with a transaction in flight looks again.
    pub in_flight: Duration,
    /// The pause between passes when nothing woke the engine.
    pub poll_interval: Duration,
    /// How long after `settleAt` the watcher waits for the participants to settle before it
    /// settles for them.
    pub settle_grace: Duration,
    /// The most jobs one pass works: between passes new closes are planned, the chain's clock
    /// read again and shutdown heard, however many jobs are due.
    pub max_jobs_per_pass: usize,
    /// How long before a lock's deadline, `min(expiry, settleAt)`, the watcher registers a
    /// condition it holds for a lock still pending: room for the transaction to be mined
    /// (and its fee raised) before the deadline.
    pub register_margin: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            recheck: Duration::from_secs(30),
            in_flight: Duration::from_secs(2),
            poll_interval: Duration::from_secs(1),
            settle_grace: Duration::from_secs(600),
            max_jobs_per_pass: 64,
            register_margin: Duration::from_secs(3_600),
        }
    }
}

/// Disputes stale closes and settles guarded channels, through the transaction sender.
#[derive(Clone)]
pub struct DisputeEngine {
    provider: DynProvider,
    db: Database,
    sender: TxSender,
    token_network: Address,
    /// The key the Watches name: disputes are sent from it.
    watcher: Address,
    config: EngineConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    sender_wake: Arc<Notify>,
    registrations: Registrations,
}

impl std::fmt::Debug for DisputeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisputeEngine")
            .field("token_network", &self.token_network)
            .field("watcher", &self.watcher)
            .finish_non_exhaustive()
    }
}

/// The kinds of job.
const DISPUTE: &str = "dispute";
const SETTLE: &str = "settle";

struct Job {
    channel_id: B256,
    kind: String,
    tx_id: Option<i64>,
    last_decision: Option<String>,
    hurried_at: Option<i64>,
}

/// What a reconcile decided.
struct Step {
    done: bool,
    tx_id: Option<i64>,
    due_in: Duration,
    /// Not looked at again before the chain's clock reaches this (unix seconds).
    due_chain: Option<u64>,
    decisions: Vec<(&'static str, String)>,
    hurried: bool,
}

impl Step {
    fn new(tx_id: Option<i64>, due_in: Duration) -> Self {
        Self {
            done: false,
            tx_id,
            due_in,
            due_chain: None,
            decisions: Vec::new(),
            hurried: false,
        }
    }

    /// Waits for the chain's clock to reach `at` before anything can change.
    fn until_chain_time(mut self, at: u64) -> Self {
        self.due_chain = Some(at);
        self
    }

    fn decide(mut self, code: &'static str, detail: impl Into<String>) -> Self {
        self.decisions.push((code, detail.into()));
        self
    }

    fn finished(mut self) -> Self {
        self.done = true;
        self
    }
}

impl DisputeEngine {
    /// An engine sending through `sender`, which must hold the `watcher` key.
    pub fn new(
        provider: DynProvider,
        db: Database,
        sender: TxSender,
        token_network: Address,
        watcher: Address,
        config: EngineConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            provider,
            db,
            sender,
            token_network,
            watcher,
            config,
            metrics,
            wake: Arc::default(),
            sender_wake: Arc::default(),
            registrations: Registrations::default(),
        }
    }

    /// Registers the conditions phones hand over in `terms.registry`, through
    /// `terms.signed_agent` (none without).
    pub fn with_registrations(mut self, terms: Registrations) -> Self {
        self.registrations = terms;
        self
    }

    /// Shares the notifications with the rest of the service: `wake` wakes the engine (new
    /// blocks indexed, a receipt for a closed channel), `sender_wake` is notified when a
    /// transaction was queued.
    pub fn with_notifications(mut self, wake: Arc<Notify>, sender_wake: Arc<Notify>) -> Self {
        self.wake = wake;
        self.sender_wake = sender_wake;
        self
    }

    /// Passes until `shutdown` resolves. A failing pass is retried with backoff: the jobs are
    /// all in the database, so nothing is forgotten meanwhile. A pass that found more due jobs
    /// than it may work is followed by another at once.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut backoff = Backoff::new("dispute engine", self.config.poll_interval, MAX_BACKOFF);
        loop {
            let pause = match self.pass().await {
                Ok(worked) => {
                    backoff.succeeded();
                    if worked >= self.config.max_jobs_per_pass {
                        Duration::ZERO
                    } else {
                        self.config.poll_interval
                    }
                }
                Err(error) => {
                    self.metrics.failed(error.fault(), &error);
                    backoff.failed(&error)
                }
            };
            tokio::select! {
                biased;
                _ = &mut shutdown => return,
                _ = self.wake.notified(), if backoff.failures() == 0 => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Creates the jobs of newly closed (or settled) channels, then works the jobs that are
    /// due, at most `max_jobs_per_pass`. Returns how many it worked.
    pub async fn pass(&self) -> Result<usize, SettlementError> {
        self.plan().await?;
        let head = self
            .provider
            .get_block_by_number(Default::default())
            .await
            .map_err(|e| SettlementError::Rpc(e.to_string()))?;
        self.metrics
            .rpc_ok(head.as_ref().map(|block| block.header.number));
        let chain_now = head.map_or(0, |block| block.header.timestamp);
        let mut worked = 0;
        while worked < self.config.max_jobs_per_pass && self.work_one(chain_now).await? {
            worked += 1;
        }
        while worked < self.config.max_jobs_per_pass && self.register_one(chain_now).await? {
            worked += 1;
        }
        Metrics::add(&self.metrics.jobs_worked, worked as u64);
        Ok(worked)
    }

    /// Every replica plans; the primary key makes it idempotent.
    async fn plan(&self) -> Result<(), SettlementError> {
        let now = unix_millis();
        let mut tx = self.db.pool().begin().await?;
        // A dispute job for each close whose closer signed a proof we hold with a Watch.
        sqlx::query(
            "INSERT INTO watcher_jobs (channel_id, kind, state, due_at) \
             SELECT c.channel_id, 'dispute', 'active', $1 FROM channels c \
             WHERE c.state = 'closed' AND c.penalized = 0 \
             AND EXISTS (SELECT 1 FROM receipts r WHERE r.channel_id = c.channel_id AND r.signer = c.closer) \
             ON CONFLICT (channel_id, kind) DO NOTHING",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // A settle job for each closed channel a phone trusted us with.
        sqlx::query(
            "INSERT INTO watcher_jobs (channel_id, kind, state, due_at) \
             SELECT c.channel_id, 'settle', 'active', $1 FROM channels c \
             WHERE c.state = 'closed' \
             AND (EXISTS (SELECT 1 FROM receipts r WHERE r.channel_id = c.channel_id) \
                  OR EXISTS (SELECT 1 FROM proof_backups b WHERE b.channel_id = c.channel_id)) \
             ON CONFLICT (channel_id, kind) DO NOTHING",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // A close that settled unpenalized while we held a proof of the closer's (the watcher
        // was down, or too late): looked at once, to say what it cost.
        sqlx::query(
            "INSERT INTO watcher_jobs (channel_id, kind, state, due_at) \
             SELECT c.channel_id, 'dispute', 'active', $1 FROM channels c \
             WHERE c.state = 'settled' AND c.penalized = 0 AND c.closer IS NOT NULL \
             AND EXISTS (SELECT 1 FROM receipts r WHERE r.channel_id = c.channel_id AND r.signer = c.closer) \
             ON CONFLICT (channel_id, kind) DO NOTHING",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // A reorg can undo what finished a job (a penalty, a settle): work it again.
        sqlx::query(
            "UPDATE watcher_jobs SET state = 'active', due_at = $1 WHERE state = 'done' AND channel_id IN \
             (SELECT channel_id FROM channels WHERE state = 'closed' \
              AND (watcher_jobs.kind = 'settle' OR penalized = 0))",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims one due job, reconciles it and commits; false when none is due.
    async fn work_one(&self, chain_now: u64) -> Result<bool, SettlementError> {
        let lock = self.claim_clause();
        let mut tx = self.db.pool().begin().await?;
        let query = format!(
            "SELECT channel_id, kind, tx_id, last_decision, hurried_at FROM watcher_jobs \
             WHERE state = 'active' AND due_at <= $1 AND (due_chain_time IS NULL OR due_chain_time <= $2) \
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
        let job = Job {
            channel_id: sql::b256(&row, 0)?,
            kind: row.try_get(1)?,
            tx_id: row.try_get(2)?,
            last_decision: row.try_get(3)?,
            hurried_at: row.try_get(4)?,
        };
        let channel = load_channel(&mut *tx, job.channel_id).await?;
        let step = match (job.kind.as_str(), channel) {
            (_, None) => Step::new(None, self.config.recheck)
                .decide(
                    "channel_gone",
                    "the channel is not indexed (its opening was reorged out)",
                )
                .finished(),
            (DISPUTE, Some(channel)) if channel.phase == ChannelPhase::Settled => {
                self.audit_settled(&mut tx, &channel).await?
            }
            (_, Some(channel)) if channel.phase == ChannelPhase::Settled => {
                Step::new(None, self.config.recheck)
                    .decide("settled", "the channel is settled")
                    .finished()
            }
            (_, Some(channel)) if channel.phase == ChannelPhase::Open => {
                Step::new(job.tx_id, self.config.recheck)
                    .decide("open", "the channel is open (its close was reorged out)")
            }
            (DISPUTE, Some(channel)) => self.dispute(&mut tx, &job, &channel, chain_now).await?,
            (SETTLE, Some(channel)) => self.settle(&mut tx, &job, &channel, chain_now).await?,
            (kind, Some(_)) => Step::new(None, self.config.recheck)
                .decide("unknown_job", format!("no such job kind {kind:?}"))
                .finished(),
        };
        let queued = step
            .decisions
            .iter()
            .any(|(code, _)| matches!(*code, "dispute_queued" | "evidence_queued"));
        self.record(&mut tx, &job, step).await?;
        tx.commit().await?;
        if queued {
            smartmesh_chain::crash_point("engine.queued");
        }
        Ok(true)
    }

    /// What a query claiming a row appends: replicas sharing a Postgres skip each other's.
    fn claim_clause(&self) -> &'static str {
        match self.db.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    async fn dispute(
        &self,
        conn: &mut AnyConnection,
        job: &Job,
        channel: &ChannelRow,
        chain_now: u64,
    ) -> Result<Step, SettlementError> {
        if channel.penalized {
            return Ok(Step::new(None, self.config.recheck)
                .decide("penalized", "the closer is penalized")
                .finished());
        }
        let mut step = Step::new(None, self.config.recheck);
        if let Some(tx_id) = job.tx_id {
            match self.in_flight(conn, tx_id).await? {
                Flight::Waiting(detail) => {
                    let mut step = Step::new(Some(tx_id), self.config.in_flight)
                        .decide("dispute_in_flight", detail);
                    if self.should_hurry(job, channel, chain_now) {
                        self.sender.hurry(conn, tx_id).await?;
                        Metrics::add(&self.metrics.escalations, 1);
                        step.hurried = true;
                        let settle_at = channel.settle_at.unwrap_or_default();
                        let when = if chain_now < settle_at {
                            format!("settleAt {settle_at} is near (chain time {chain_now})")
                        } else {
                            format!(
                                "settleAt {settle_at} has passed (chain time {chain_now}) with our dispute unmined; \
                                 it still lands if it is mined before anyone settles"
                            )
                        };
                        step = step.decide("dispute_escalated", format!("{when}: fees raised"));
                    }
                    return Ok(step);
                }
                Flight::Over(code, detail) => step = step.decide(code, detail),
            }
        }
        let (Some(closer), Some(claim), Some(settle_at)) =
            (channel.closer, channel.claim_transferred, channel.settle_at)
        else {
            return Ok(step.decide("no_close", "the indexed channel has no close"));
        };
        let Some(held) = self.best_proof(conn, channel.channel_id, closer).await? else {
            return Ok(step.decide("no_proof", "no proof signed by the closer is held"));
        };
        let closed_at = settle_at.saturating_sub(channel.settle_timeout);
        let proven = held.signed.proof.transferredAmount;
        let nonce = held.signed.proof.nonce;
        let lists = crate::indexer::lock_lists(conn, channel.channel_id)
            .await?
            .unwrap_or_default();
        let declared = LockList::decode(&lists.own).map_err(|e| SettlementError::Stored {
            field: "ChannelLocksDeclared.ownLocks".into(),
            value: e.to_string(),
        })?;
        let verdict = judge_close(
            &CloseSeen {
                claim,
                closed_at,
                declared: &declared,
                evidence_nonce: lists.evidence_nonce,
            },
            &HeldCloserProof {
                transferred: proven,
                nonce,
                locks: &held.locks,
                watch_deadline: held.watch.deadline,
            },
        );
        let evidence = match verdict {
            CloseVerdict::Dispute => false,
            CloseVerdict::SubmitEvidence => true,
            CloseVerdict::ClaimCovers => {
                return Ok(step.decide(
                    "claim_covers_proof",
                    format!(
                        "the claim {claim} and the declared locks cover the best proof held ({proven} at nonce {nonce}, {} lock(s)): no dispute",
                        held.locks.len()
                    ),
                ));
            }
            CloseVerdict::EvidenceHeld => {
                return Ok(step.decide(
                    "evidence_held",
                    format!(
                        "lock evidence at nonce {} is on chain, the best proof held is at nonce {nonce}",
                        lists.evidence_nonce
                    ),
                ));
            }
            CloseVerdict::WatchExpired => {
                return Ok(step.decide(
                    "watch_expired",
                    format!(
                        "the Watch expired at {} before the close at {closed_at}",
                        held.watch.deadline
                    ),
                ));
            }
        };
        let call = TokenNetwork::updateClaimCall {
            channelId: channel.channel_id,
            closerProof: held.signed.proof.clone().into(),
            closerSig: Bytes::copy_from_slice(held.signed.signature.as_bytes()),
            closerLocks: Bytes::from(held.locks.encode()),
            watch: held.watch.clone().into(),
            nonCloserSig: held.watch_signature.clone(),
        };
        let detail = if evidence {
            format!(
                "closer {closer} claimed {claim} declaring {} lock(s) but signed {proven} with {} lock(s) at nonce {nonce}: \
                 submitting the proof as lock evidence; reward {}",
                declared.len(),
                held.locks.len(),
                held.watch.reward
            )
        } else {
            format!(
                "closer {closer} claimed {claim} but signed {proven} (nonce {nonce}); reward {}",
                held.watch.reward
            )
        };
        match self
            .queue(
                conn,
                self.token_network,
                call.abi_encode(),
                Some(self.watcher),
            )
            .await?
        {
            Ok(Queued::New(tx_id)) => {
                let (counter, code) = if evidence {
                    (&self.metrics.evidence_queued, "evidence_queued")
                } else {
                    (&self.metrics.disputes_queued, "dispute_queued")
                };
                Metrics::add(counter, 1);
                Ok(Step::new(Some(tx_id), self.config.in_flight).decide(code, detail))
            }
            Ok(Queued::Adopted(tx_id)) => Ok(Step::new(Some(tx_id), self.config.in_flight).decide(
                "dispute_in_flight",
                format!("transaction {tx_id} already carries this dispute"),
            )),
            Err(revert) => Ok(step.decide("dispute_not_sent", revert)),
        }
    }

    /// A channel settled unpenalized while we hold a proof of the closer's: had the proof
    /// disputed the close, the victim lost what the penalty would have given it. Recorded,
    /// counted and logged at error level: an operator must know.
    async fn audit_settled(
        &self,
        conn: &mut AnyConnection,
        channel: &ChannelRow,
    ) -> Result<Step, SettlementError> {
        let step = Step::new(None, self.config.recheck).finished();
        let (Some(closer), Some(claim), Some(settle_at)) =
            (channel.closer, channel.claim_transferred, channel.settle_at)
        else {
            return Ok(step.decide("settled", "the channel is settled"));
        };
        if channel.penalized {
            return Ok(step.decide("settled", "the channel settled with the closer penalized"));
        }
        let Some(held) = self.best_proof(conn, channel.channel_id, closer).await? else {
            return Ok(step.decide("settled", "the channel is settled"));
        };
        let closed_at = settle_at.saturating_sub(channel.settle_timeout);
        let proven = held.signed.proof.transferredAmount;
        // What a lie cost: the proof alone, as a penalty ignores every lock.
        let seen = CloseSeen {
            claim,
            closed_at,
            declared: &held.locks,
            evidence_nonce: U256::MAX,
        };
        let alone = HeldCloserProof {
            transferred: proven,
            nonce: held.signed.proof.nonce,
            locks: &held.locks,
            watch_deadline: held.watch.deadline,
        };
        if judge_close(&seen, &alone) != CloseVerdict::Dispute {
            return Ok(step.decide(
                "settled",
                "the channel is settled; the claim covered every proof held",
            ));
        }
        let victim_is_1 = closer == channel.participant2;
        let total = channel
            .deposit1
            .saturating_add(channel.deposit2)
            .saturating_sub(channel.withdrawn1.saturating_add(channel.withdrawn2));
        let owed = total.saturating_sub(held.watch.reward.min(total));
        let paid = channel
            .payouts
            .map_or(U256::ZERO, |(p1, p2)| if victim_is_1 { p1 } else { p2 });
        let lost = owed.saturating_sub(paid);
        let recorded = sqlx::query(
            "INSERT INTO missed_disputes (channel_id, closer, claimed, proven, lost, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (channel_id) DO NOTHING",
        )
        .bind(channel.channel_id.to_vec())
        .bind(closer.to_string())
        .bind(claim.to_string())
        .bind(proven.to_string())
        .bind(lost.to_string())
        .bind(unix_millis())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if recorded > 0 {
            Metrics::add(&self.metrics.missed_disputes, 1);
            error!(
                target: "smartmesh::engine",
                channel = %channel.channel_id,
                %closer,
                %claim,
                %proven,
                %lost,
                "missed dispute: the close settled unpenalized though a held proof proved the closer lied"
            );
        }
        Ok(step.decide(
            "missed_dispute",
            format!(
                "closer {closer} claimed {claim} but signed {proven}; the channel settled at {settle_at} \
                 before our dispute: the victim got {paid} instead of {owed}, {lost} lost"
            ),
        ))
    }

    async fn settle(
        &self,
        conn: &mut AnyConnection,
        job: &Job,
        channel: &ChannelRow,
        chain_now: u64,
    ) -> Result<Step, SettlementError> {
        let settle_at = channel.settle_at.unwrap_or_default();
        let due = settle_at.saturating_add(self.config.settle_grace.as_secs());
        if chain_now < due {
            // Nothing can change before the chain's clock passes `due`: not looked at again
            // until a block says it has (a test chain's clock jumps, so wall time says little).
            return Ok(Step::new(job.tx_id, Duration::ZERO)
                .until_chain_time(due)
                .decide(
                    "holding",
                    format!(
                        "the hold period ends at {settle_at}; settling from {due} if nobody has"
                    ),
                ));
        }
        let mut step = Step::new(None, self.config.recheck);
        if let Some(tx_id) = job.tx_id {
            match self.in_flight(conn, tx_id).await? {
                Flight::Waiting(detail) => {
                    return Ok(Step::new(Some(tx_id), self.config.in_flight)
                        .decide("settle_in_flight", detail));
                }
                Flight::Over(code, detail) => step = step.decide(code, detail),
            }
        }
        // Never settle over our own dispute still on its way: it would forfeit the penalty.
        let dispute_in_flight: Option<i64> = sqlx::query_scalar(
            "SELECT tx_id FROM watcher_jobs WHERE channel_id = $1 AND kind = 'dispute' AND state = 'active'",
        )
        .bind(channel.channel_id.to_vec())
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
        if dispute_in_flight.is_some() {
            return Ok(Step::new(None, self.config.in_flight).decide(
                "waiting_for_dispute",
                "our dispute of this close is still in flight",
            ));
        }
        // A channel holding lock lists settles with them (plain settle would revert with
        // LocksPending): the lists are public, in the close's and the evidence's events.
        let input = match crate::indexer::lock_lists(conn, channel.channel_id).await? {
            Some(lists) => TokenNetwork::settleWithLocksCall {
                channelId: channel.channel_id,
                ownLocks: lists.own,
                evidenceLocks: lists.evidence,
                partnerLocks: lists.partner,
            }
            .abi_encode(),
            None => TokenNetwork::settleCall {
                channelId: channel.channel_id,
            }
            .abi_encode(),
        };
        match self.queue(conn, self.token_network, input, None).await? {
            Ok(Queued::Adopted(tx_id)) => Ok(Step::new(Some(tx_id), self.config.in_flight).decide(
                "settle_in_flight",
                format!("transaction {tx_id} already carries this settle"),
            )),
            Ok(Queued::New(tx_id)) => {
                Metrics::add(&self.metrics.settles_queued, 1);
                Ok(Step::new(Some(tx_id), self.config.in_flight).decide(
                    "settle_queued",
                    format!("the hold period ended at {settle_at}; settling for the participants"),
                ))
            }
            Err(revert) => Ok(step.decide("settle_not_sent", revert)),
        }
    }

    /// Simulates the call to `to` against the latest state and queues it; `Ok(Err(reason))`
    /// when the simulation reverts (nothing is queued: no gas is wasted) or sending is paused
    /// because the key's ETH runs low.
    async fn queue(
        &self,
        conn: &mut AnyConnection,
        to: Address,
        input: Vec<u8>,
        from: Option<Address>,
    ) -> Result<Result<Queued, String>, SettlementError> {
        // The same call for the same channel may still be on its way though the job forgot it
        // (a reorg undid what finished the job, and the sender is sending it again): follow
        // that one rather than send a second.
        // TokenNetwork calls name their channel in the first word; a SignedAgent request is
        // the same call only byte for byte.
        let head = if to == self.token_network {
            input[..36.min(input.len())].to_vec()
        } else {
            input.clone()
        };
        let query = format!(
            "SELECT id FROM sender_transactions WHERE to_address = $1 AND substr(input, 1, {}) = $2 \
             AND (status IN ('queued', 'pending') OR (status IN ('mined', 'confirmed') AND succeeded = 1)) ORDER BY id DESC LIMIT 1",
            head.len()
        );
        let adopted: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .bind(to.to_string())
            .bind(head)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(id) = adopted {
            return Ok(Ok(Queued::Adopted(id)));
        }
        let input = Bytes::from(input);
        let simulation = TransactionRequest::default()
            .from(from.unwrap_or(self.watcher))
            .to(to)
            .input(input.clone().into());
        let gas = match self.provider.estimate_gas(simulation).await {
            Ok(gas) => gas,
            Err(error) => match smartmesh_chain::revert_reason(&error) {
                Some(reason) => return Ok(Err(format!("simulation reverted: {reason}"))),
                None => return Err(SettlementError::Rpc(error.to_string())),
            },
        };
        let request = TxRequest {
            to,
            input,
            value: U256::ZERO,
            // A margin over the estimate: state may change a little before inclusion.
            gas_limit: gas + gas / 4 + 10_000,
        };
        let prepared = match self.sender.prepare_in(conn, from).await {
            Ok(prepared) => prepared,
            // Paused until the key is funded: said in the job's decisions, tried again later.
            Err(error @ ChainError::LowBalance { .. }) => return Ok(Err(error.to_string())),
            Err(error) => return Err(error.into()),
        };
        let id = match self.sender.submit_in(conn, &request, &prepared).await {
            Ok(id) => id,
            // Paused until the key is funded: said in the job's decisions, tried again later.
            Err(error @ ChainError::LowBalance { .. }) => return Ok(Err(error.to_string())),
            Err(error) => return Err(error.into()),
        };
        self.sender_wake.notify_one();
        Ok(Ok(Queued::New(id)))
    }

    async fn in_flight(
        &self,
        conn: &mut AnyConnection,
        tx_id: i64,
    ) -> Result<Flight, SettlementError> {
        Ok(match self.sender.status_in(conn, tx_id).await? {
            TxStatus::Queued => Flight::Waiting(format!("transaction {tx_id} queued")),
            TxStatus::Pending { hash } => {
                Flight::Waiting(format!("transaction {tx_id} sent as {hash}"))
            }
            TxStatus::Mined {
                hash,
                block,
                succeeded: true,
            }
            | TxStatus::Confirmed {
                hash,
                block,
                succeeded: true,
            } => {
                let indexed = crate::indexer::indexed_block(&mut *conn).await?;
                if indexed.is_some_and(|indexed| indexed >= block) {
                    // Indexed past its block, yet the channel shows nothing of it: a reorg
                    // undid it. Decide afresh.
                    Flight::Over(
                        "transaction_undone",
                        format!("{hash} of block {block} no longer shows on chain"),
                    )
                } else {
                    Flight::Waiting(format!(
                        "{hash} mined in block {block}; waiting for the indexer"
                    ))
                }
            }
            TxStatus::Mined {
                hash,
                block,
                succeeded: false,
            }
            | TxStatus::Confirmed {
                hash,
                block,
                succeeded: false,
            } => Flight::Over(
                "transaction_reverted",
                format!("{hash} reverted in block {block}"),
            ),
            TxStatus::Failed { reason } => Flight::Over("transaction_failed", reason),
        })
    }

    /// Escalate when less than half the hold period is left, each time a quarter of what is
    /// left has passed (at least a second apart).
    fn should_hurry(&self, job: &Job, channel: &ChannelRow, chain_now: u64) -> bool {
        let settle_at = channel.settle_at.unwrap_or_default();
        let left = settle_at.saturating_sub(chain_now);
        if left.saturating_mul(2) > channel.settle_timeout {
            return false;
        }
        let every = i64::try_from(left.saturating_mul(1000) / 4)
            .unwrap_or(i64::MAX)
            .max(1000);
        job.hurried_at
            .is_none_or(|at| unix_millis().saturating_sub(at) >= every)
    }

    async fn best_proof(
        &self,
        conn: &mut AnyConnection,
        channel_id: B256,
        closer: Address,
    ) -> Result<Option<HeldProof>, SettlementError> {
        let Some(row) = sqlx::query(
            "SELECT proof, proof_digest, watcher, reward, watch_deadline, watch_signature, locks FROM receipts \
             WHERE channel_id = $1 AND signer = $2",
        )
        .bind(channel_id.to_vec())
        .bind(closer.to_string())
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(None);
        };
        let bytes: Vec<u8> = row.try_get(0)?;
        let signed = SignedProof::decode(&bytes).map_err(|e| SettlementError::Stored {
            field: "proof".into(),
            value: e.to_string(),
        })?;
        let digest = sql::b256(&row, 1)?;
        let watch = Watch {
            channelId: channel_id,
            proofDigest: digest,
            watcher: sql::address(&row, 2)?,
            reward: sql::u256(&row, 3)?,
            deadline: sql::u256(&row, 4)?,
        };
        let locks = row.try_get::<Option<Vec<u8>>, _>(6)?.unwrap_or_default();
        let locks = LockList::decode(&locks).map_err(|e| SettlementError::Stored {
            field: "receipts.locks".into(),
            value: e.to_string(),
        })?;
        Ok(Some(HeldProof {
            signed,
            watch,
            watch_signature: Bytes::from(row.try_get::<Vec<u8>, _>(5)?),
            locks,
        }))
    }

    async fn record(
        &self,
        conn: &mut AnyConnection,
        job: &Job,
        step: Step,
    ) -> Result<(), SettlementError> {
        let mut last = job.last_decision.clone();
        let now = unix_millis();
        for (code, detail) in &step.decisions {
            if last.as_deref() == Some(*code) {
                continue;
            }
            info!(target: "smartmesh::engine", channel = %job.channel_id, kind = %job.kind, decision = code, tx = ?step.tx_id, "{detail}");
            sqlx::query(
                "INSERT INTO watcher_decisions (channel_id, kind, decision, detail, tx_id, decided_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(job.channel_id.to_vec())
            .bind(&job.kind)
            .bind(*code)
            .bind(detail)
            .bind(step.tx_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            last = Some((*code).to_owned());
        }
        sqlx::query(
            "UPDATE watcher_jobs SET state = $1, tx_id = $2, due_at = $3, last_decision = $4, hurried_at = $5, \
             due_chain_time = $8 WHERE channel_id = $6 AND kind = $7",
        )
        .bind(if step.done { "done" } else { "active" })
        .bind(step.tx_id)
        .bind(now.saturating_add(millis(step.due_in)))
        .bind(last)
        .bind(if step.hurried { Some(now) } else { job.hurried_at })
        .bind(job.channel_id.to_vec())
        .bind(&job.kind)
        .bind(
            step.due_chain
                .map(|at| i64::try_from(at).unwrap_or(i64::MAX)),
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

enum Queued {
    /// Queued now.
    New(i64),
    /// The same call was already on its way.
    Adopted(i64),
}

enum Flight {
    /// Still on its way: wait.
    Waiting(String),
    /// Over without the effect showing: decide afresh.
    Over(&'static str, String),
}

struct HeldProof {
    signed: SignedProof,
    watch: Watch,
    watch_signature: Bytes,
    /// The lock list behind the proof's `locksRoot`.
    locks: LockList,
}

/// A duration in whole milliseconds for the `*_at` columns, saturating at `i64::MAX` (about
/// 292 million years) rather than wrapping.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
