"""What ``scripts/{sft,expert_iteration,grpo,dpo}.py`` run: a training loop with its data, validation, metrics
log, plot and checkpoint. The configs live in ``training.configs``, importable without torch."""
