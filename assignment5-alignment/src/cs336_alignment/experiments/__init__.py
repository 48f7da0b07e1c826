"""The handout's experiments on the fixed GSM8K test subset, one module each, run by ``scripts/experiments/``
(on the GPU machine through ``scripts/gpu_run.sh``). The configs live in ``experiments.configs``, importable
without torch."""
