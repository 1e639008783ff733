-- The watcher keeps, per payer, the proof with the highest transferred amount and lets a Watch
-- with a later deadline replace an earlier one; its upserts compare both in SQL. They are
-- stored from now on as 78-digit zero-padded decimals (78 digits hold any uint256), so that
-- text order is numeric order. Readers parse them as decimals, leading zeros and all.
UPDATE receipts SET
    transferred_amount = substr('000000000000000000000000000000000000000000000000000000000000000000000000000000' || transferred_amount, -78, 78),
    watch_deadline = substr('000000000000000000000000000000000000000000000000000000000000000000000000000000' || watch_deadline, -78, 78);
UPDATE proof_backups SET
    transferred_amount = substr('000000000000000000000000000000000000000000000000000000000000000000000000000000' || transferred_amount, -78, 78);
