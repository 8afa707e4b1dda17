"""The tamper-evident audit log: one record per call, hash-chained per worker, verifiable offline."""
