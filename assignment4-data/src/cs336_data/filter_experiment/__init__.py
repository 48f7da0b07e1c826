"""The filter-versus-raw experiment: token files on the CPU (:mod:`.prepare`), the same model trained on each corpus
on a GPU (:mod:`.training`), its tables and plots (:mod:`.report`), and why it came out as it did (:mod:`.diagnostics`,
with a Witten-Bell bigram cross-check in :mod:`.bigram`).

:mod:`.training` and :mod:`.report` need only torch, numpy, matplotlib and ``cs336_basics``: the GPU machine has none
of this package's own dependencies (fastText, resiliparse, NLTK), so nothing here imports them at package level.
"""
