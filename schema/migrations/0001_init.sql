-- ridestream schema v1 (docs/contract.md, "Outputs"). Money is numeric(…,2) summed from integer
-- cents; trip distance is numeric(…,2) miles summed from integer hundredths,
-- so every sum is exact and independent of arrival order.

-- One row per valid input ride; (src_partition, src_offset) is its identity.
CREATE TABLE IF NOT EXISTS rides (
    src_partition   integer        NOT NULL,
    src_offset      bigint         NOT NULL,
    pickup_at       timestamptz    NOT NULL,
    dropoff_at      timestamptz,
    pu_location_id  integer        NOT NULL,
    do_location_id  integer,
    trip_distance   numeric(10,2),
    passenger_count integer,
    vendor_id       integer,
    fare_amount     numeric(12,2),
    tip_amount      numeric(12,2),
    tolls_amount    numeric(12,2),
    total_amount    numeric(12,2)  NOT NULL,
    window_start    timestamptz    NOT NULL,
    is_late         boolean        NOT NULL,
    PRIMARY KEY (src_partition, src_offset)
);

-- Every input message that could not be decoded or validated.
CREATE TABLE IF NOT EXISTS rejected_input (
    src_partition integer     NOT NULL,
    src_offset    bigint      NOT NULL,
    raw           bytea       NOT NULL,
    error         text        NOT NULL,
    PRIMARY KEY (src_partition, src_offset)
);

-- Every late ride: the window it missed and by how much.
CREATE TABLE IF NOT EXISTS late_rides (
    src_partition  integer       NOT NULL,
    src_offset     bigint        NOT NULL,
    pickup_at      timestamptz   NOT NULL,
    pu_location_id integer       NOT NULL,
    total_amount   numeric(12,2) NOT NULL,
    window_start   timestamptz   NOT NULL,
    window_end     timestamptz   NOT NULL,
    stream_time    timestamptz   NOT NULL,
    late_by        interval      NOT NULL,
    PRIMARY KEY (src_partition, src_offset)
);

-- Final hourly revenue per (window, pickup zone): written once, never updated.
-- Column names follow the tutorial (window_start, num_trips, total_revenue).
CREATE TABLE IF NOT EXISTS hourly_revenue (
    window_start    timestamptz   NOT NULL,
    pu_location_id  integer       NOT NULL,
    window_end      timestamptz   NOT NULL,
    num_trips       bigint        NOT NULL,
    total_revenue   numeric(18,2) NOT NULL,
    total_distance  numeric(18,2) NOT NULL,
    total_tips      numeric(18,2) NOT NULL,
    total_passengers bigint       NOT NULL,
    finalized_at    timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, pu_location_id)
);

-- What the sink has applied, per source topic partition, committed in the same
-- transaction as the rows it covers. Counters are cumulative up to next_offset.
CREATE TABLE IF NOT EXISTS sink_progress (
    topic          text        NOT NULL,
    src_partition  integer     NOT NULL,
    next_offset    bigint      NOT NULL,
    stream_time    timestamptz,
    rides          bigint      NOT NULL DEFAULT 0,
    rejected       bigint      NOT NULL DEFAULT 0,
    heartbeats     bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, src_partition)
);
