"""The configs of the experiment scripts, importable without torch so that a script's ``--help`` answers at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from cs336_alignment.loop_configs import ExpertIterationConfig, GRPOConfig, SFTConfig
from cs336_alignment.run_config import PolicyConfig


@dataclass
class MathBaselineConfig:
    """Zero-shot accuracy on a fixed GSM8K test subset with each prompt at each sampling temperature: 0 is greedy
    (what the SFT, EI and GRPO evaluations use), 1.0 with top-p 1.0 is the handout's evaluation setting."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    out_dir: str = field(default="runs/math_baseline", metadata={"help": "folder for the table, plot and JSONL"})
    prompts: list[str] = field(
        default_factory=lambda: ["r1_zero", "question_only"], metadata={"help": "prompt styles to evaluate"}
    )
    temperatures: list[float] = field(
        default_factory=lambda: [0.0, 1.0],
        metadata={"help": "sampling temperatures, top-p 1 (0: greedy; 1: the handout's evaluation)"},
    )
    seed: int = field(default=0, metadata={"help": "sampling seed (reruns draw the same samples)"})
    subset_size: int = field(default=500, metadata={"help": "GSM8K test problems (1319: all of them)"})
    subset_seed: int = field(default=0, metadata={"help": "seed of the subset rule (0: the committed subset)"})
    max_tokens: int = field(default=1024, metadata={"help": "response length cap (tokens)"})
    failures_per_outcome: int = field(default=3, metadata={"help": "failure examples shown per failure outcome"})

    def __post_init__(self):
        if not self.temperatures or any(t < 0 for t in self.temperatures):
            raise ValueError(f"--temperatures needs one or more values >= 0, got {self.temperatures}")
        if len(set(self.temperatures)) < len(self.temperatures):
            raise ValueError(f"--temperatures lists a value twice: {self.temperatures}")


@dataclass
class SFTSweepConfig:
    """SFT on GSM8K reasoning traces at several dataset sizes, each run from the same initial policy."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    sft: SFTConfig = field(
        default_factory=lambda: SFTConfig(
            sft_steps=200, batch_size=32, gradient_accumulation_steps=2, lr=2e-5, warmup_steps=10, eval_every=50
        )
    )
    out_dir: str = field(default="runs/sft_experiment", metadata={"help": "folder for the table, plot and JSONL"})
    train_sizes: list[int] = field(
        default_factory=lambda: [128, 256, 512, 1024, 0],
        metadata={"help": "unique training examples of each run (0: all 7,473)"},
    )
    data_seed: int = field(default=0, metadata={"help": "shuffle of GSM8K train; each size takes a prefix"})
    subset_size: int = field(default=500, metadata={"help": "fixed GSM8K test subset for the final accuracy"})
    subset_seed: int = field(default=0, metadata={"help": "seed of the subset rule (0: the committed subset)"})
    val_size: int = field(default=200, metadata={"help": "first N subset problems for intermediate evaluations"})
    max_tokens: int = field(default=512, metadata={"help": "evaluation response length cap (tokens)"})
    save_checkpoint: str | None = field(
        default=None, metadata={"help": "save the policy of the --save_size run here (none: not saved)"}
    )
    save_size: int = field(default=-1, metadata={"help": "train size whose policy is saved (-1: the last listed)"})


@dataclass
class ExpertIterationSweepConfig:
    """Expert iteration under several (samples per question, rounds) settings, each from the same policy."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ei: ExpertIterationConfig = field(
        default_factory=lambda: ExpertIterationConfig(questions_per_step=256, ei_max_tokens=512)
    )
    sft: SFTConfig = field(
        default_factory=lambda: SFTConfig(batch_size=32, gradient_accumulation_steps=2, lr=2e-5, warmup_steps=0)
    )
    out_dir: str = field(default="runs/expert_iteration_experiment", metadata={"help": "table, plot and JSONL"})
    settings: list[str] = field(
        default_factory=lambda: ["4x3", "8x3"],
        metadata={"help": "GxR: G samples per question for R rounds (overrides the two ei options)"},
    )
    prompt: str = field(
        default="r1_zero",
        metadata={"help": "r1_zero or question_only: the prompt, stop strings and reward of rollouts and evaluation"},
    )
    subset_size: int = field(default=500, metadata={"help": "fixed GSM8K test subset for the final accuracy"})
    subset_seed: int = field(default=0, metadata={"help": "seed of the subset rule (0: the committed subset)"})
    val_size: int = field(default=200, metadata={"help": "first N subset problems evaluated after every round"})
    state_dir: str | None = field(
        default=None,
        metadata={
            "help": "save each setting's state here after every round (a folder per setting), and continue from it "
            "when it is there (the same command again; only --ei.ei_max_seconds and --out_dir may change)"
        },
    )

    def __post_init__(self):
        parsed = [parse_setting(setting) for setting in self.settings]  # bad settings fail before the model loads
        if len(set(parsed)) < len(parsed):
            raise ValueError(f"--settings lists a setting twice: {self.settings}")


def parse_setting(text: str) -> tuple[int, int]:
    """``"8x3"`` -> 8 samples per question, 3 rounds."""
    try:
        samples, rounds = (int(part) for part in text.lower().split("x"))
    except ValueError as err:
        raise ValueError(f"--settings takes GxR pairs such as 4x3, got {text!r}") from err
    if samples < 1 or rounds < 1:
        raise ValueError(f"--settings needs G >= 1 and R >= 1, got {text!r}")
    return samples, rounds


@dataclass
class GRPOExperimentConfig:
    """One GRPO run from a policy (base or SFT checkpoint), measured on the fixed GSM8K test subset."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    out_dir: str = field(default="runs/grpo_experiment", metadata={"help": "folder for the table, plot and JSONL"})
    run_name: str | None = field(default=None, metadata={"help": "label in tables and plots (none: the changed flags)"})
    prompt: str = field(
        default="r1_zero",
        metadata={"help": "r1_zero or question_only: the prompt, stop strings and reward of training and evaluation"},
    )
    subset_size: int = field(default=500, metadata={"help": "fixed GSM8K test subset, evaluated before and after"})
    subset_seed: int = field(default=0, metadata={"help": "seed of the subset rule (0: the committed subset)"})
    val_size: int = field(default=200, metadata={"help": "first N subset problems validated every eval_every steps"})
    state_dir: str | None = field(
        default=None,
        metadata={
            "help": "save the training state here when the run stops, and continue from it when it is there "
            "(the same command again; only --grpo.max_seconds, --grpo.eval_every and --out_dir may change)"
        },
    )


@dataclass
class RunComparisonConfig:
    """Output folders of grpo_experiment.py (or of sft_experiment.py, expert_iteration_experiment.py), compared in one
    table and one figure."""

    runs: list[str] = field(default_factory=list, metadata={"help": "experiment output folders"})
    name: str = field(default="comparison", metadata={"help": "base name of the table and plot files"})
    title: str | None = field(default=None, metadata={"help": "figure and table title (none: from the name)"})
    out_dir: str = field(default="runs/comparison", metadata={"help": "folder for the table and plot"})
    at_step: int = field(
        default=0,
        metadata={
            "help": "GRPO runs of different lengths: add the mean validation accuracy of the evaluations at steps "
            "at_step-30..at_step (from step 1) and its change from step 0 (0: leave out)"
        },
    )

    def __post_init__(self):
        if not self.runs:
            raise ValueError("--runs needs at least one experiment output folder")
        if self.at_step < 0:
            raise ValueError(f"--at_step must be >= 0, got {self.at_step}")
