-- ridestream schema v5 (docs/contract.md, "Outputs"): what every tumbling window with rides
-- holds so far, kept by the sink in the transactions that land its rides, for window_status.
CREATE TABLE IF NOT EXISTS window_counts (
    aggregation  text        NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    rides        bigint      NOT NULL DEFAULT 0,  -- on-time rides
    late_rides   bigint      NOT NULL DEFAULT 0,  -- rides that missed it
    PRIMARY KEY (aggregation, window_start)
);

-- The event time of the last heartbeat each partition applied.
ALTER TABLE sink_progress ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz;
