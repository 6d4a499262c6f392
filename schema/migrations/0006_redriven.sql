-- ridestream schema v6 (docs/contract.md, "Bad input"): rejected records sent back to the input
-- by `ridestream redrive`. A row is written before its record is produced (sent_offset empty)
-- and completed after, so a run stopped midway can tell what it sent.
CREATE TABLE IF NOT EXISTS redriven (
    src_partition  integer     NOT NULL,
    src_offset     bigint      NOT NULL,
    started_at     timestamptz NOT NULL,
    sent_partition integer,
    sent_offset    bigint,
    sent_at        timestamptz,
    PRIMARY KEY (src_partition, src_offset)
);

-- A rejected record that was itself re-driven names where it was rejected before.
ALTER TABLE rejected_input ADD COLUMN IF NOT EXISTS redrive_of text;
