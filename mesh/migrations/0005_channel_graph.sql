-- The channels of the whole network this wallet knows of (DESIGN.md 4.1), read from the
-- TokenNetwork's events whenever the chain is reachable and kept for the time offline: the
-- graph a mediated payment is routed on. A channel leaves once it settled.
CREATE TABLE graph_channels (
    channel_id BLOB PRIMARY KEY,
    participant1 TEXT NOT NULL,
    participant2 TEXT NOT NULL
);
-- How far the events were read.
CREATE TABLE graph_progress (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    next_block INTEGER NOT NULL
);
