"""Data: the corpus generator, counting, records, frames, prompt features, and real-trace ingest and fetch."""
