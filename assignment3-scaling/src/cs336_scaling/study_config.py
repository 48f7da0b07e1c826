"""What a scaling study is asked to do: the planner's settings, where its runs train, and the check at the target.

Only dataclasses (no torch, no plotting), so ``scripts/plan_study.py --help`` answers at once; ``study.run_study``
does the work.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from cs336_scaling.run_spec import TRAIN_FLOPS

OptimumMethodName = Literal["lowest_loss", "parabola", "joint"]  # the values of ``isoflops.OptimumMethod``


@dataclass(frozen=True)
class PlannerConfig:
    """The strategy's settings (``planner`` docstring): budget, target, grid of levels and sizes, sweep, fits."""

    budget: float = field(default=2e18, metadata={"help": "FLOPs the study may spend on queries"})
    target_flops: float = field(default=1e19, metadata={"help": "budget to predict the best model for"})
    sizes_per_level: int = field(default=5, metadata={"help": "model sizes trained per IsoFLOPs level"})
    min_levels: int = field(default=3, metadata={"help": "fewest IsoFLOPs levels"})
    max_levels: int = field(default=6, metadata={"help": "most IsoFLOPs levels"})
    size_spread: float = field(default=16.0, metadata={"help": "a level's sizes span this factor"})
    prior_tokens_per_parameter: float = field(
        default=20.0,
        metadata={"help": "Chinchilla prior D = r N, in tokens actually trained (in-process: divided by the scale)"},
    )
    learning_rates: list[float] = field(
        default_factory=lambda: [2.5e-4, 5e-4, 1e-3], metadata={"help": "the sweep's learning rates"}
    )
    batch_sizes: list[int] = field(default_factory=lambda: [128, 256], metadata={"help": "the sweep's batch sizes"})
    sweep_fraction: float = field(default=0.1, metadata={"help": "share of the budget kept for the sweep"})
    edge_extensions: int = field(default=1, metadata={"help": "extra sizes bought past an edge optimum"})
    aspect_ratio: float = field(default=64.0, metadata={"help": "preferred d_model / layers"})
    aspect_weight: float = field(
        default=0.05, metadata={"help": "how strongly shapes keep that ratio (0.3: one family)"}
    )
    head_dim: int = field(default=64, metadata={"help": "d_model / heads of every shape"})
    allowed_flops: list[float] = field(
        default_factory=lambda: list(TRAIN_FLOPS), metadata={"help": "the API's train_flops values"}
    )
    optimum_method: OptimumMethodName = field(
        default="parabola", metadata={"help": "per-level optimum the prediction uses (the others: for comparison)"}
    )
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for the intervals"})
    seed: int = field(default=0, metadata={"help": "bootstrap and (in-process) training seed"})
    concurrency: int = field(
        default=1, metadata={"help": "queries in flight at once (in-process: the number of workers)"}
    )
    adaptive_levels: bool = field(
        default=True,
        metadata={"help": "centre each level on the law fitted so far; off: every level on the prior, all at once"},
    )

    def __post_init__(self):
        if self.sizes_per_level < 3:
            raise ValueError(f"sizes_per_level must be at least 3 to bracket an optimum, got {self.sizes_per_level}")
        if not 0 <= self.sweep_fraction < 1:
            raise ValueError(f"sweep_fraction must be in [0, 1), got {self.sweep_fraction}")
        if self.size_spread <= 1:
            raise ValueError(f"size_spread must exceed 1, got {self.size_spread}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.min_levels < 2 or self.max_levels < self.min_levels:
            raise ValueError(f"need 2 <= min_levels <= max_levels, got {self.min_levels}, {self.max_levels}")
        if not self.learning_rates or not self.batch_sizes:
            raise ValueError("learning_rates and batch_sizes need at least one value each")
        if self.optimum_method not in typing.get_args(OptimumMethodName):
            raise ValueError(f"optimum_method must be one of {typing.get_args(OptimumMethodName)}")


@dataclass(frozen=True)
class RemoteApiConfig:
    """A running training API (ours or the course's)."""

    url: str | None = field(default=None, metadata={"help": "the API's address, e.g. http://127.0.0.1:8000"})
    api_key: str | None = field(default=None, metadata={"help": "key with a FLOPs budget"})


@dataclass(frozen=True)
class InProcessConfig:
    """The service without HTTP: its store, worker pool and real training runs, on this machine's devices."""

    tokens: str | None = field(default=None, metadata={"help": "uint16 token file to train on"})
    vocab_size: int | None = field(default=None, metadata={"help": "default: largest token id + 1"})
    db: str | None = field(default=None, metadata={"help": "SQLite store (default: OUT_DIR/api.sqlite)"})
    flops_scale: float = field(default=1.0, metadata={"help": "fraction of train_flops actually trained"})
    time_budget: float | None = field(
        default=None, metadata={"help": "seconds: time probe runs and choose flops_scale to fit them"}
    )
    context_length: int = field(default=512, metadata={"help": "tokens per training window"})
    batch_divisor: int = field(default=1, metadata={"help": "divide the requested batch size by this"})
    eval_sequences: int = field(
        default=512, metadata={"help": "held-out windows scoring each run (fewer: cheaper, noisier)"}
    )
    devices: str = field(default="auto", metadata={"help": "'auto' (every GPU, else the CPU), 'cpu', 'cuda:0,cuda:1'"})
    workers_per_device: int = field(default=1, metadata={"help": "runs sharing each device at once"})
    processes: bool = field(default=False, metadata={"help": "each worker trains in its own process"})
    compile: bool = field(default=False, metadata={"help": "torch.compile each run's model (pays off on GPUs)"})


@dataclass(frozen=True)
class CheckConfig:
    """Training the prediction at the target budget (in-process only), outside the API's budget."""

    train: bool = field(default=False, metadata={"help": "train the predicted model at the target budget"})
    neighbours: list[float] = field(
        default_factory=list, metadata={"help": "also train sizes each factor smaller and larger (2 4: a profile)"}
    )
    deadline: float | None = field(
        default=None, metadata={"help": "seconds since start after which no neighbour starts"}
    )
    max_steps: int | None = field(default=None, metadata={"help": "skip neighbours training more steps than this"})


@dataclass(frozen=True)
class StudyConfig:
    """Plan and run a budgeted scaling-law study, fit it, predict the best model for the target, write a report.

    Give either ``api.url`` and ``api.api_key`` (a running API) or ``service.tokens`` (in-process; the only way
    to use ``service.time_budget`` and ``check.train``)."""

    out_dir: str = field(
        default="runs/scaling_study", metadata={"help": "folder for report.md, study.json and the plots"}
    )
    api: RemoteApiConfig = field(default_factory=RemoteApiConfig)
    service: InProcessConfig = field(default_factory=InProcessConfig)
    check: CheckConfig = field(default_factory=CheckConfig)
    plan: PlannerConfig = field(default_factory=PlannerConfig)

    def __post_init__(self):
        if (self.api.url is None) == (self.service.tokens is None):
            raise ValueError("give either api.url and api.api_key (a running API) or service.tokens (in-process)")
        if self.api.url is not None and self.api.api_key is None:
            raise ValueError("api.url needs api.api_key")
        if self.api.url is not None and (self.check.train or self.service.time_budget):
            raise ValueError("check.train and service.time_budget need the in-process service (service.tokens)")

    @property
    def in_process(self) -> bool:
        return self.service.tokens is not None
