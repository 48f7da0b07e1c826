"""End-to-end model benchmarking and memory profiling (handout §1.1): timing and NVTX ranges."""

from cs336_systems.benchmarking.model_benchmark import ModelBenchmarkConfig, benchmark_model
from cs336_systems.benchmarking.timing import TimingStats, time_repeated

__all__ = [
    "ModelBenchmarkConfig",
    "TimingStats",
    "benchmark_model",
    "time_repeated",
]
