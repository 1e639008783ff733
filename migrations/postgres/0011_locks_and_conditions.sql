-- The lock list behind each held proof's locksRoot (DESIGN.md 3.4): updateClaim needs it to
-- submit the proof, and a phone restored from a backup learns its pending locks from it.
-- NULL or empty for a proof without locks.
ALTER TABLE receipts ADD COLUMN locks BYTEA;
ALTER TABLE proof_backups ADD COLUMN locks BYTEA;

-- Conditions (hashlock secrets, signature-lock acks) phones handed the watcher with their
-- receipts, each inside a SignedAgent request the phone signed: registering the condition
-- through it pays the watcher its fee in the same transaction. The watcher sends it only
-- when the lock it pays is still pending as min(expiry, settleAt) nears.
CREATE TABLE watcher_conditions (
    condition_id BYTEA PRIMARY KEY,
    -- The channel whose lock the phone said it meets.
    channel_id BYTEA NOT NULL,
    -- abi.encode(AgentRequest) and the phone's signature of it.
    request BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    -- held, queued, registered, expired.
    state TEXT NOT NULL,
    tx_id BIGINT,
    -- Wall-clock milliseconds of the next check, and the chain time it waits for, if any.
    due_at BIGINT NOT NULL,
    due_chain_time BIGINT,
    detail TEXT,
    uploaded_at BIGINT NOT NULL
);
CREATE INDEX watcher_conditions_due ON watcher_conditions (state, due_at);
CREATE INDEX watcher_conditions_by_channel ON watcher_conditions (channel_id);
