"""CS336 assignment 4: Common Crawl to training data.

Extraction, language ID, PII masking, quality and harmful-content filters, deduplication, a parallel pipeline.
"""
