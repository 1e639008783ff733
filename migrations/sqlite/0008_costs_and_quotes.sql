-- What each mined transaction cost its key (gas used times the effective price), booked by
-- the sender when it reads the receipt, so every wei a key spends is counted: payloads,
-- reverted payloads and the fillers that take a refused payload's nonce.
ALTER TABLE sender_transactions ADD COLUMN gas_used BIGINT;
ALTER TABLE sender_transactions ADD COLUMN gas_price TEXT;

-- Quotes expire and are deleted; each user keeps only its latest few.
CREATE INDEX relay_quotes_by_from ON relay_quotes (from_address, id);
CREATE INDEX relay_quotes_by_expiry ON relay_quotes (expires_at);

-- Why a relay's key spent what it spent: relayed, reverted or filler.
ALTER TABLE relays ADD COLUMN spend_cause TEXT;
