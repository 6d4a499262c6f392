-- ridestream schema v3 (docs/contract.md, "Aggregations", "Outputs"): a pipeline declares
-- aggregations, each with its own table, created by the sink from the declaration.

-- Every table a pipeline writes, with the pipeline that owns it (its --prefix) and what
-- defines it: a second pipeline in the same schema cannot write another's table.
CREATE TABLE IF NOT EXISTS ridestream_tables (
    table_name text        PRIMARY KEY,
    pipeline   text        NOT NULL,
    definition text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A ride can be late for one aggregation and on time for another: late_rides names the
-- aggregation. A session has no window to miss: its rows carry the ride's event time.
ALTER TABLE late_rides ADD COLUMN aggregation text NOT NULL DEFAULT 'hourly_revenue';
ALTER TABLE late_rides ALTER COLUMN aggregation DROP DEFAULT;
ALTER TABLE late_rides ADD COLUMN event_at timestamptz;
-- An existing late row missed a window that ended after its event time: when the pickup was
-- optional, the window start is the closest known event time.
UPDATE late_rides SET event_at = coalesce(pickup_at, window_start);
ALTER TABLE late_rides ALTER COLUMN event_at SET NOT NULL;
ALTER TABLE late_rides ALTER COLUMN window_start DROP NOT NULL, ALTER COLUMN window_end DROP NOT NULL;
ALTER TABLE late_rides DROP CONSTRAINT late_rides_pkey, ADD PRIMARY KEY (aggregation, src_partition, src_offset);
