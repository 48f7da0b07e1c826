"""What ``scripts/evaluate_math.py``, ``scripts/evaluate_mmlu.py`` and ``scripts/generate_instruction_outputs.py``
run: a policy's answers on a benchmark, scored or written for the benchmark's judge. The configs live in
``evaluation.configs``, importable without torch."""
