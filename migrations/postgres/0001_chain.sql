-- Where each log follower stands: the last block whose effects are committed.
CREATE TABLE follower_cursor (
    follower TEXT PRIMARY KEY,
    block_number BIGINT NOT NULL,
    block_hash BYTEA
);

-- Recent blocks a follower processed, to find the fork point of a reorg.
CREATE TABLE follower_blocks (
    follower TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    block_hash BYTEA NOT NULL,
    PRIMARY KEY (follower, block_number)
);
