-- The overview's guest and delivery breakdowns filter by creation date; without these
-- indexes a dated overview scanned both tables whole (BENCHMARKS.md, director reports).
CREATE INDEX guests_created_idx ON guests (created_at);
CREATE INDEX deliveries_created_idx ON deliveries (created_at);
