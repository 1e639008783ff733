-- The watcher's work per channel: one 'dispute' and one 'settle' job, reconciled against the
-- indexed chain until the channel is settled. Replicas claim due jobs with FOR UPDATE SKIP
-- LOCKED (Postgres); the transaction a job queues commits with the job's new state.
CREATE TABLE watcher_jobs (
    channel_id BLOB NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    -- The sender transaction in flight for this job, if any.
    tx_id BIGINT,
    -- Wall-clock milliseconds of the next check.
    due_at BIGINT NOT NULL,
    last_decision TEXT,
    -- Wall-clock milliseconds of the last fee escalation.
    hurried_at BIGINT,
    PRIMARY KEY (channel_id, kind)
);
CREATE INDEX watcher_jobs_due ON watcher_jobs (state, due_at);

-- Every decision the watcher took about a channel, for GET /v1/channels/{id} and audits.
CREATE TABLE watcher_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id BLOB NOT NULL,
    kind TEXT NOT NULL,
    decision TEXT NOT NULL,
    detail TEXT NOT NULL,
    tx_id BIGINT,
    decided_at BIGINT NOT NULL
);
CREATE INDEX watcher_decisions_by_channel ON watcher_decisions (channel_id, id);
