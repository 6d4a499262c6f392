-- ridestream schema v2 (docs/contract.md, "Input"): with --event-time-field naming a field
-- of its own, a ride's pickup time is optional, so pickup_at may be NULL.
ALTER TABLE rides ALTER COLUMN pickup_at DROP NOT NULL;
ALTER TABLE late_rides ALTER COLUMN pickup_at DROP NOT NULL;
