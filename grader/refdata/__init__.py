"""Reference data: weights, reference records, record snapshots."""
