"""CS336 assignment 4: Common Crawl to training data (extraction, language ID, PII, quality and harmful-content filters, deduplication)."""
