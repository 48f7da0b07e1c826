"""Common Crawl shards to training tokens: steps (filters as thin wrappers), executors, stages, statistics."""
