"""The configuration of ``run_experiment`` (torch-free, so that ``run_experiment.py --help`` is instant)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cs336_basics.model_config import ModelConfig

EXPERIMENTS = ("learning_rate", "batch_size", "ablations", "speedrun", "main_experiment")
SPEEDRUN_TRICKS = ("muon", "relu2", "qk_norm", "zero_init_output", "trapezoidal")
SPEEDRUN_PARTS = ("baseline", "budgets", "ablations")
SPEEDRUN_COOLDOWN = 0.5  # the speedrun's default cool-down share; run names mention only other values


@dataclass
class ExperimentConfig:
    """A named experiment on a corpus built by ``build_experiment_corpus.py`` (every field is a flag)."""

    experiment: str = field(metadata={"help": f"one of {', '.join(EXPERIMENTS)}"})
    corpus: str = field(default="runs/experiment_corpus", metadata={"help": "train.bin, valid.bin, vocab, merges"})
    out_dir: str = field(default="runs/experiments", metadata={"help": "results go to out_dir/<experiment>/"})
    seconds: float = field(default=30.0, metadata={"help": "training time of each run (compile, eval excluded)"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "seeds of every configuration"})
    lr: float = field(default=3e-3, metadata={"help": "the baseline's peak learning rate (unless --lr_from)"})
    lr_from: str | None = field(default=None, metadata={"help": "results.json of learning_rate: use its best rate"})
    learning_rates: list[float] = field(
        default_factory=lambda: [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2, 1e-1],
        metadata={"help": "learning_rate: the rates swept"},
    )
    batch_sizes: list[int] = field(
        default_factory=lambda: [1, 8, 32, 128, 512, 2048], metadata={"help": "batch_size: the sizes swept"}
    )
    memory_probe_batches: list[int] = field(
        default_factory=lambda: [4096, 8192, 16384], metadata={"help": "batch_size: larger sizes tried for memory"}
    )
    speedrun_fractions: list[float] = field(
        default_factory=lambda: [0.4, 0.5, 0.6], metadata={"help": "speedrun: budgets as fractions of seconds"}
    )
    muon_lrs: list[float] = field(default_factory=lambda: [0.02, 0.04], metadata={"help": "speedrun: Muon rates"})
    speedrun_adam_lrs: list[float] = field(
        default_factory=list, metadata={"help": "speedrun: AdamW rates of embedding, head and gains (default: lr)"}
    )
    speedrun_cooldowns: list[float] = field(
        default_factory=lambda: [SPEEDRUN_COOLDOWN],
        metadata={"help": "speedrun: shares of each run spent in the linear cool-down (the first one for ablations)"},
    )
    speedrun_parts: list[str] = field(
        default_factory=lambda: list(SPEEDRUN_PARTS), metadata={"help": "speedrun: which of baseline budgets ablations"}
    )
    speedrun_ablations: list[str] | None = field(
        default=None,
        metadata={"help": "speedrun: the tricks removed one at a time (default: every one the recipe has)"},
    )
    speedrun_qk_norm: bool = field(
        default=True, metadata={"help": "speedrun: QK-norm in the recipe (--no-speedrun_qk_norm: names end in _noqk)"}
    )
    batch_size: int = 128
    model: ModelConfig = field(default_factory=ModelConfig)
    compile: bool = True
    device: str = "auto"
    evaluations: int = field(default=12, metadata={"help": "validations during each run"})
    eval_batches: int = 8
    eval_batch_size: int = 64
    final_eval_batches: int = field(default=64, metadata={"help": "batches of each run's last validation"})
    main_config: str = field(default="speedrun", metadata={"help": "main_experiment: speedrun or baseline"})
    samples: int = field(default=3, metadata={"help": "main_experiment: samples generated"})
    sample_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.9
    progress: bool = False
    merge_from: list[str] = field(
        default_factory=list, metadata={"help": "instead of running: combine these result folders of the experiment"}
    )

    def __post_init__(self):
        if self.experiment not in EXPERIMENTS:
            raise ValueError(f"experiment must be one of {EXPERIMENTS}, got {self.experiment!r}")
        if self.seconds <= 0 or not self.seeds:
            raise ValueError("seconds must be positive and seeds non-empty")
        if self.main_config not in ("speedrun", "baseline"):
            raise ValueError(f"main_config must be 'speedrun' or 'baseline', got {self.main_config!r}")
        unknown = set(self.speedrun_parts) - set(SPEEDRUN_PARTS)
        if unknown or not self.speedrun_parts:
            raise ValueError(
                f"speedrun_parts must be a non-empty subset of {SPEEDRUN_PARTS}, got {self.speedrun_parts}"
            )
        if self.speedrun_ablations is not None and (
            not self.speedrun_ablations or not set(self.speedrun_ablations) <= set(SPEEDRUN_TRICKS)
        ):
            raise ValueError(
                f"speedrun_ablations must be a non-empty subset of {SPEEDRUN_TRICKS}, got {self.speedrun_ablations}"
            )
        if not self.speedrun_qk_norm and "qk_norm" in (self.speedrun_ablations or []):
            raise ValueError("speedrun_ablations cannot remove qk_norm from a recipe without it (no-speedrun_qk_norm)")
        if not self.muon_lrs:
            raise ValueError("muon_lrs must not be empty")
        if not self.speedrun_cooldowns or not all(0.0 <= c <= 1.0 for c in self.speedrun_cooldowns):
            raise ValueError(f"speedrun_cooldowns must be non-empty shares in [0, 1], got {self.speedrun_cooldowns}")

    @property
    def ablated_tricks(self) -> list[str]:
        """The tricks the speedrun's ablations remove: ``speedrun_ablations``, or every trick of the recipe."""
        if self.speedrun_ablations is not None:
            return self.speedrun_ablations
        return [t for t in SPEEDRUN_TRICKS if self.speedrun_qk_norm or t != "qk_norm"]

    @property
    def adam_lrs(self) -> list[float]:
        """The speedrun's AdamW rates: ``speedrun_adam_lrs``, or the baseline's rate."""
        return self.speedrun_adam_lrs or [self.lr]
