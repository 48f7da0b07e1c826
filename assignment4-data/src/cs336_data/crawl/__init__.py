"""A realistic mixed sample crawl, built offline and deterministically from real text (see :mod:`.build`)."""
