-- Conditional payments (DESIGN.md 3.4). Each proof row keeps the channel message it travelled
-- in (to hand over again byte for byte) and the lock list behind its locksRoot (the 64-byte
-- encodings concatenated, empty for none); the phone keeps every secret it learns and every
-- registry read it made, and when it last saw the channel open (t_open).
ALTER TABLE sent ADD COLUMN message BLOB;
ALTER TABLE sent ADD COLUMN locks BLOB NOT NULL DEFAULT x'';
ALTER TABLE received ADD COLUMN message BLOB;
ALTER TABLE received ADD COLUMN locks BLOB NOT NULL DEFAULT x'';
ALTER TABLE channels ADD COLUMN open_seen_at INTEGER NOT NULL DEFAULT 0;

CREATE TABLE secrets (
    condition_id BLOB PRIMARY KEY,
    secret BLOB NOT NULL,
    -- 1 once the watcher holds it.
    synced INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE registry_reads (
    condition_id BLOB PRIMARY KEY,
    registered_at INTEGER NOT NULL,
    block_time INTEGER NOT NULL
);
