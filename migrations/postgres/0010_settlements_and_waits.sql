-- What a settle paid each participant (from ChannelSettled, or a cooperative settle's
-- balances): with the held proofs, what a close that settled unpenalized cost its victim.
ALTER TABLE channels ADD COLUMN payout1 TEXT;
ALTER TABLE channels ADD COLUMN payout2 TEXT;

-- Closes that settled unpenalized though a proof the watcher held proved the closer lied:
-- the watcher was not there in time. Amounts are decimal strings.
CREATE TABLE missed_disputes (
    channel_id BYTEA PRIMARY KEY,
    closer TEXT NOT NULL,
    claimed TEXT NOT NULL,
    proven TEXT NOT NULL,
    lost TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);

-- A job waiting for the chain's clock (a hold period to end) is not looked at before the
-- chain's latest block reaches this timestamp.
ALTER TABLE watcher_jobs ADD COLUMN due_chain_time BIGINT;
