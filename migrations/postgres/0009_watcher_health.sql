-- One row the watcher's health check writes: whether the database takes a write now.
CREATE TABLE watcher_health (
    id BIGINT PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
