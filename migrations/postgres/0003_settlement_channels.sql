-- Every TokenNetwork event the watcher indexed, in chain order. Channel rows are derived from
-- these, so rolling back a reorg is deleting the orphaned events and deriving again.
CREATE TABLE channel_events (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    channel_id BYTEA NOT NULL,
    topics BYTEA NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX channel_events_by_channel ON channel_events (channel_id, block_number, log_index);

-- Each channel's state as its events left it. Amounts are decimal strings (uint256).
CREATE TABLE channels (
    channel_id BYTEA PRIMARY KEY,
    participant1 TEXT NOT NULL,
    participant2 TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    settle_timeout BIGINT NOT NULL,
    state TEXT NOT NULL,
    deposit1 TEXT NOT NULL,
    deposit2 TEXT NOT NULL,
    withdrawn1 TEXT NOT NULL,
    withdrawn2 TEXT NOT NULL,
    closer TEXT,
    claim_transferred TEXT,
    closer_received TEXT,
    settle_at BIGINT,
    closed_block BIGINT,
    penalized BIGINT NOT NULL,
    updated_block BIGINT NOT NULL
);
