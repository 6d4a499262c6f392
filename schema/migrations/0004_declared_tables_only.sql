-- ridestream schema v4 (docs/contract.md, "Outputs"): a schema holds the raw tables and the
-- tables its pipeline declares. The first migration created hourly_revenue in every schema;
-- since v3 the sink creates each declared aggregation's table itself. An hourly_revenue that
-- is empty and that no pipeline has claimed in ridestream_tables is dropped here; the sink of a
-- pipeline that declares it (the default) creates it again with the same columns and key.
DO $$
BEGIN
    IF to_regclass('hourly_revenue') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM hourly_revenue)
       AND NOT EXISTS (SELECT 1 FROM ridestream_tables WHERE table_name = 'hourly_revenue') THEN
        DROP TABLE hourly_revenue;
    END IF;
END $$;
