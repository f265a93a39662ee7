"""Bottom layer: reading and writing records (JSONL, JSON) whole or not at all."""
