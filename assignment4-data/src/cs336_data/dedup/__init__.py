"""Exact-line and MinHash + LSH fuzzy deduplication, both able to spill their hashes to disk by bucket."""
