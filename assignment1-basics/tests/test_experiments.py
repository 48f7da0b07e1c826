"""The experiment corpus, the time-budgeted training clock, divergence handling and the experiment runner, on CPU."""

import json

import numpy as np
import pytest
from cs336_basics import train as train_module
from cs336_basics.experiment_config import SPEEDRUN_TRICKS, ExperimentConfig
from cs336_basics.experiment_corpus import ExperimentCorpusConfig, build_experiment_corpus
from cs336_basics.experiments import peak_loss, run_experiment, run_status
from cs336_basics.model import ModelConfig
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.train import TrainConfig, train

TINY = ModelConfig(vocab_size=300, context_length=16, d_model=16, num_layers=1, num_heads=2, d_ff=24)
WORDS = "the cat sat on a mat while dogs ran over hills and birds sang in green trees near old towns".split()


def _document(rng: np.random.Generator, words: int) -> str:
    return " ".join(rng.choice(WORDS, size=words)) + "."


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A corpus from a folder of documents (two sources) and an <|endoftext|>-separated file."""
    root = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(0)
    for source in ("manuals", "dictionary"):
        (root / "folder" / source).mkdir(parents=True)
        for i in range(30):
            (root / "folder" / source / f"{i:03d}.txt").write_text(_document(rng, 120))
    stories = [_document(rng, 80) for _ in range(20)]
    (root / "stories.txt").write_text("<|endoftext|>".join(stories * 2))  # every story twice, as in the course sample
    cfg = ExperimentCorpusConfig(
        sources=[str(root / "folder"), str(root / "stories.txt")],
        out_dir=str(tmp_path_factory.mktemp("corpus")),
        include_gensim=False,
        vocab_size=300,
        max_train_tokens=12_000,
        valid_chars=6_000,
        progress=False,
    )
    return cfg, build_experiment_corpus(cfg)


def test_corpus_holds_out_whole_documents_and_cuts_training_after_a_document(corpus):
    cfg, summary = corpus
    out = summary["config"]["out_dir"]
    tokenizer = Tokenizer.from_files(f"{out}/vocab.json", f"{out}/merges.txt", special_tokens=["<|endoftext|>"])
    train_docs = tokenizer.decode(np.fromfile(f"{out}/train.bin", dtype="<u2").tolist()).split("<|endoftext|>")
    valid_docs = tokenizer.decode(np.fromfile(f"{out}/valid.bin", dtype="<u2").tolist()).split("<|endoftext|>")
    assert train_docs[-1] == "" and valid_docs[-1] == ""  # both end with a whole document
    assert not set(train_docs[:-1]) & set(valid_docs[:-1])
    assert summary["tokens"]["train"] <= cfg.max_train_tokens
    counted = sum(source["documents"] for source in summary["documents"]["train"].values())
    assert counted == len(train_docs) - 1
    assert set(summary["documents"]["train"]) == {"manuals", "dictionary", "stories"}
    assert json.loads(open(f"{out}/corpus.json").read())["sha256"]["train.bin"] == summary["sha256"]["train.bin"]
    assert summary["duplicate_documents_dropped"] == 20 and len(set(train_docs)) == len(train_docs)


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a folder nor a file"):
        build_experiment_corpus(ExperimentCorpusConfig(sources=[str(tmp_path / "nope")], out_dir=str(tmp_path)))


class FakeClock:
    """A clock on which every batch drawn takes 1 ms: the budget arithmetic becomes deterministic."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def batches_cost_a_millisecond(self, get_batch, slower_after: int | None = None):
        """Every batch drawn costs 1 ms, or 2 ms once ``slower_after`` batches have been drawn."""
        drawn = 0

        def timed(*args, **kwargs):
            nonlocal drawn
            drawn += 1
            self.now += 0.002 if slower_after is not None and drawn > slower_after else 0.001
            return get_batch(*args, **kwargs)

        return timed


def _config(corpus, out, **overrides) -> TrainConfig:
    cfg, summary = corpus
    out_dir = summary["config"]["out_dir"]
    settings = dict(
        train_data=f"{out_dir}/train.bin",
        valid_data=f"{out_dir}/valid.bin",
        out_dir=str(out),
        model=TINY,
        batch_size=4,
        max_lr=3e-3,
        warmup_iters=5,
        eval_batches=1,
        device="cpu",
        progress=False,
    )
    return TrainConfig(**(settings | overrides))


def test_time_budget_fixes_the_length_and_the_clock_excludes_validation(corpus, tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(train_module.time, "perf_counter", clock)
    monkeypatch.setattr(train_module, "get_batch", clock.batches_cost_a_millisecond(train_module.get_batch))
    summary = train(_config(corpus, tmp_path, max_iters=10**9, time_budget=0.06, evaluations=4, eval_batches=3))
    assert summary["iterations"] == 60  # 1 ms per step; the 3 x 4 validation batches are not counted
    assert summary["train_seconds"] == pytest.approx(0.06)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["train_seconds"] for r in records]
    assert seconds == sorted(seconds)
    assert [r["step"] for r in records if "val_loss" in r] == [30, 45, 60]  # every quarter once the length is fixed


def test_time_budget_refits_the_length_when_steps_slow_down(corpus, tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(train_module.time, "perf_counter", clock)
    batches = clock.batches_cost_a_millisecond(train_module.get_batch, slower_after=40)
    monkeypatch.setattr(train_module, "get_batch", batches)
    summary = train(_config(corpus, tmp_path, max_iters=10**9, time_budget=0.1, evaluations=10, eval_batches=1))
    # Timed at 1 ms per step, 100 steps would fit; from the 40th batch on a step takes 2 ms. Fixed at 100 steps the
    # run would take about 0.16 s; re-fitted at each validation it ends within a few steps of the budget.
    assert summary["train_seconds"] == pytest.approx(0.1, abs=0.006)
    assert summary["iterations"] < 80


def test_time_budget_runs_cannot_resume():
    with pytest.raises(ValueError, match="cannot be resumed"):
        TrainConfig(train_data="x.bin", time_budget=10.0, resume=True)


def test_a_run_that_becomes_nan_stops_and_says_so(corpus, tmp_path):
    summary = train(_config(corpus, tmp_path, max_iters=200, max_lr=1e30, grad_clip=1e30, log_interval=5))
    assert summary["diverged"] and summary["iterations"] < 200


def test_run_status_hand_worked():
    chance_10k = 9.21
    assert run_status(False, 3.0, 4.0, 10_000) == "ok"
    assert run_status(False, 9.3, 9.4, 10_000) == "ok"  # learned nothing, but did not blow up
    assert run_status(True, 3.0, 4.0, 10_000) == "diverged"
    assert run_status(False, 3.0, chance_10k + 20, 10_000) == "diverged"  # blew up, recovered by the end
    assert run_status(False, None, float("nan"), 10_000) == "diverged"
    metrics = [{"step": 10, "train_loss": 9.0}, {"step": 10, "val_loss": 9.1}, {"step": 20, "train_loss": 30.0},
               {"step": 30, "val_loss": 4.0}]  # fmt: skip
    assert peak_loss(metrics) == 30.0


def test_runner_writes_table_plots_metrics_and_merges_calls(corpus, tmp_path):
    cfg, summary = corpus
    common = dict(corpus=summary["config"]["out_dir"], seconds=0.2, model=TINY, batch_size=4, compile=False,
                  device="cpu", eval_batches=1, eval_batch_size=4, final_eval_batches=2)  # fmt: skip
    first = run_experiment(
        ExperimentConfig("learning_rate", out_dir=str(tmp_path / "a"), learning_rates=[1e-3], **common)
    )
    second = run_experiment(
        ExperimentConfig("learning_rate", out_dir=str(tmp_path / "b"), learning_rates=[1e30], **common)
    )
    assert first["runs"][0]["status"] == "ok" and second["runs"][0]["status"] == "diverged"
    sources = [str(tmp_path / "a" / "learning_rate"), str(tmp_path / "b" / "learning_rate")]
    merged = run_experiment(
        ExperimentConfig("learning_rate", out_dir=str(tmp_path / "m"), merge_from=sources, **common)
    )
    out = tmp_path / "m" / "learning_rate"
    assert [r["max_lr"] for r in merged["runs"]] == [1e-3, 1e30]
    for name in ("table.md", "results.json", "val_loss_vs_steps.png", "val_loss_vs_time.png", "final_loss_vs_lr.png"):
        assert (out / name).stat().st_size > 0
    assert (out / merged["runs"][0]["metrics"]).is_file()
    table = (out / "table.md").read_text()
    assert "| lr 0.001 | 0 |" in table and "diverged" in table
    with pytest.raises(ValueError, match="not 'ablations'"):
        run_experiment(ExperimentConfig("ablations", out_dir=str(tmp_path / "x"), merge_from=[str(out)], **common))
    # the run length comes from the sources, not from the merging command's flags (its default is 30 s)
    merged_at_flag_30s = run_experiment(
        ExperimentConfig("learning_rate", out_dir=str(tmp_path / "n"), merge_from=sources, **common | {"seconds": 30})
    )
    assert merged_at_flag_30s["config"]["seconds"] == 0.2
    longer = run_experiment(
        ExperimentConfig(
            "learning_rate", out_dir=str(tmp_path / "c"), learning_rates=[1e-3], **common | {"seconds": 0.3}
        )
    )
    assert longer["runs"][0]["status"] == "ok"
    with pytest.raises(ValueError, match="0.3 s runs"):
        run_experiment(
            ExperimentConfig(
                "learning_rate",
                out_dir=str(tmp_path / "y"),
                merge_from=[sources[0], str(tmp_path / "c" / "learning_rate")],
                **common,
            )
        )


def test_ablation_experiment_builds_the_handouts_variants(corpus):
    from cs336_basics.experiments import ablation_runs, speedrun_runs

    cfg = ExperimentConfig("ablations", seeds=[0, 1])
    runs = ablation_runs(cfg)
    assert len(runs) == 12 and {r.train.seed for r in runs} == {0, 1}
    variants = {r.name.rsplit("_seed", 1)[0]: r.train for r in runs}
    assert variants["post_norm"].model.norm == "post" and variants["no_pos_emb"].model.position == "none"
    assert variants["silu_ffn"].model.d_ff == 2016 and variants["no_norm_lr_quarter"].max_lr == cfg.lr / 4
    specs = {r.name: r for r in speedrun_runs(ExperimentConfig("speedrun", speedrun_adam_lrs=[0.01, 0.02]))}
    speedrun = {name: spec.train for name, spec in specs.items()}
    assert speedrun["speedrun_without_muon_seed0"].optimizer == "adamw"
    assert speedrun["speedrun_without_muon_seed0"].max_lr == 3e-3  # AdamW everywhere at the baseline's rate
    assert speedrun["speedrun_muonlr0.02_adamlr0.01_0.5x_seed0"].time_budget == 15.0
    assert speedrun["speedrun_muonlr0.04_adamlr0.02_0.4x_seed0"].max_lr == 0.02
    assert specs["speedrun_without_qk_norm_seed0"].reference == "speedrun_muonlr0.02_adamlr0.01_0.5x_seed0"
    assert len(specs) == 1 + 2 * 2 * 3 + 5
    only = speedrun_runs(ExperimentConfig("speedrun", speedrun_parts=["ablations"], speedrun_fractions=[0.6]))
    assert [r.train.time_budget for r in only] == [18.0] * 5
    one = speedrun_runs(ExperimentConfig("speedrun", speedrun_parts=["ablations"], speedrun_ablations=["qk_norm"]))
    assert [r.name for r in one] == ["speedrun_without_qk_norm_seed0"] and not one[0].train.model.qk_norm
    with pytest.raises(ValueError, match="speedrun_ablations"):
        ExperimentConfig("speedrun", speedrun_ablations=["softcap"])
    with pytest.raises(ValueError, match="speedrun_parts"):
        ExperimentConfig("speedrun", speedrun_parts=["warmup"])


def test_speedrun_cool_down_shares_are_a_grid_axis_and_named_only_off_default():
    from cs336_basics.experiments import speedrun_runs

    cfg = ExperimentConfig(
        "speedrun", speedrun_parts=["budgets", "ablations"], muon_lrs=[0.05], speedrun_adam_lrs=[0.01],
        speedrun_cooldowns=[0.7, 0.5], speedrun_fractions=[0.6],
    )  # fmt: skip
    specs = {r.name: r for r in speedrun_runs(cfg)}
    assert specs["speedrun_muonlr0.05_adamlr0.01_cd0.7_0.6x_seed0"].train.cooldown_fraction == 0.7
    assert specs["speedrun_muonlr0.05_adamlr0.01_0.6x_seed0"].train.cooldown_fraction == 0.5
    # the ablations take the first share, and their reference is the full speedrun with it
    assert specs["speedrun_without_relu2_seed0"].train.cooldown_fraction == 0.7
    assert specs["speedrun_without_relu2_seed0"].reference == "speedrun_muonlr0.05_adamlr0.01_cd0.7_0.6x_seed0"
    with pytest.raises(ValueError, match="speedrun_cooldowns"):
        ExperimentConfig("speedrun", speedrun_cooldowns=[1.5])


def test_speedrun_recipe_without_qk_norm_is_its_own_named_configuration():
    from cs336_basics.experiments import speedrun_runs

    cfg = ExperimentConfig(
        "speedrun", speedrun_parts=["budgets", "ablations"], muon_lrs=[0.05], speedrun_adam_lrs=[0.02],
        speedrun_cooldowns=[0.7], speedrun_fractions=[0.5, 0.55], speedrun_ablations=["relu2"], speedrun_qk_norm=False,
    )  # fmt: skip
    specs = {r.name: r for r in speedrun_runs(cfg)}
    budget = specs["speedrun_muonlr0.05_adamlr0.02_cd0.7_noqk_0.5x_seed0"]
    assert not budget.train.model.qk_norm and budget.train.model.ffn == "relu2" and budget.train.time_budget == 15.0
    assert budget.group == "speedrun, Muon 0.05, AdamW 0.02, cool-down 0.7, no QK-norm, 0.5x time"
    # an ablation removes its trick from the recipe as given, and its reference is that recipe's run
    without_relu2 = specs["speedrun_without_relu2_seed0"]
    assert not without_relu2.train.model.qk_norm and without_relu2.train.model.ffn == "swiglu"
    assert without_relu2.reference == "speedrun_muonlr0.05_adamlr0.02_cd0.7_noqk_0.55x_seed0"
    default = speedrun_runs(ExperimentConfig("speedrun", speedrun_parts=["budgets"], muon_lrs=[0.05]))
    assert all(r.train.model.qk_norm and "_noqk" not in r.name for r in default)
    with pytest.raises(ValueError, match="without it"):
        ExperimentConfig("speedrun", speedrun_qk_norm=False, speedrun_ablations=["qk_norm", "relu2"])
    # by default the ablations remove every trick the recipe has
    assert ExperimentConfig("speedrun", speedrun_qk_norm=False).ablated_tricks == [
        "muon", "relu2", "zero_init_output", "trapezoidal"
    ]  # fmt: skip
    assert ExperimentConfig("speedrun").ablated_tricks == list(SPEEDRUN_TRICKS)


def test_speedrun_time_to_target_plot_is_written_from_the_summary(tmp_path):
    from cs336_basics.experiments import plot_time_to_target, speedrun_summary

    def run(name, group, seconds, loss, seed=0, reference=None):
        return {"name": f"{name}_seed{seed}", "group": group, "seed": seed, "status": "ok", "train_seconds": seconds,
                "time_budget": seconds, "val_loss": loss, "reference": reference}  # fmt: skip

    full = "speedrun_muonlr0.05_adamlr0.02_0.6x"
    runs = [
        run("baseline", "baseline", 20.0, 3.02),
        run("speedrun_muonlr0.05_adamlr0.02_0.5x", "speedrun, 0.5x", 10.0, 3.05),
        run(full, "speedrun, 0.6x", 12.0, 3.00),
        run("speedrun_without_qk_norm", "without qk_norm", 12.0, 2.99, reference=f"{full}_seed0"),
    ]  # fmt: skip
    summary = speedrun_summary(runs, 20.0)
    assert summary["time_to_target"][0]["time_to_target"] == pytest.approx(0.56)
    plot_time_to_target(tmp_path, runs, summary)
    assert (tmp_path / "time_to_target.png").stat().st_size > 0


def test_time_to_target_interpolates_the_seed_mean_between_the_budgets_around_it():
    from cs336_basics.experiments import time_to_target, time_to_target_row

    def budget(config, fraction, seed, loss):
        return {"config": config, "fraction": fraction, "seed": seed, "measured_fraction": fraction, "val_loss": loss}

    budgets = [
        budget("a", 0.4, 0, 3.5), budget("a", 0.4, 1, 3.3),  # mean 3.4
        budget("a", 0.5, 0, 3.3), budget("a", 0.5, 1, 3.1),  # mean 3.2: the target 3.25 is 3/4 of the way from 3.4
        budget("a", 0.6, 0, 3.0),
        budget("b", 0.6, 0, 3.3),  # never reaches
        budget("c", 0.4, 0, 3.1), budget("c", 0.5, 0, 3.0),  # already at the smallest budget
    ]  # fmt: skip
    rows = {r["config"]: r for r in time_to_target(budgets, target=3.25)}
    assert rows["a"]["mean_val_losses"] == pytest.approx([3.4, 3.2, 3.0])
    assert rows["a"]["seeds"] == [[0, 1], [0, 1], [0]]
    assert rows["a"]["time_to_target"] == pytest.approx(0.4 + 0.1 * 0.15 / 0.2)
    assert rows["b"]["time_to_target"] is None and rows["c"]["time_to_target"] is None
    assert time_to_target_row(rows["a"], 3.25)[2] == "0.475x"
    assert time_to_target_row(rows["b"], 3.25)[2] == "> 0.60x"
    assert time_to_target_row(rows["c"], 3.25)[2] == "≤ 0.40x"


def test_speedrun_summary_compares_each_ablation_with_its_reference():
    from cs336_basics.experiments import speedrun_summary

    def run(name, loss, reference=None, budget=12.0):
        return {
            "name": name,
            "status": "ok",
            "val_loss": loss,
            "seed": 0,
            "time_budget": budget,
            "train_seconds": budget * 1.05,
            "reference": reference,
        }

    runs = [
        run("baseline_seed0", 3.0, budget=20.0),
        run("speedrun_muonlr0.05_adamlr0.004_0.6x_seed0", 2.9),
        run("speedrun_muonlr0.02_adamlr0.004_0.6x_seed0", 3.2),
        run("speedrun_without_relu2_seed0", 3.0, reference="speedrun_muonlr0.05_adamlr0.004_0.6x_seed0"),
    ]
    summary = speedrun_summary(runs, seconds=20.0)
    assert summary["target_loss"] == 3.0
    assert [b["reached"] for b in summary["budgets"]] == [True, False]
    assert summary["budgets"][0]["measured_fraction"] == pytest.approx(0.6)
    assert summary["tricks"] == [{"trick": "relu2", "seed": 0, "val_loss": 3.0, "change": pytest.approx(0.1)}]


def test_main_experiment_trains_then_writes_samples_and_no_checkpoint(corpus, tmp_path):
    cfg, summary = corpus
    main = ExperimentConfig(
        "main_experiment", corpus=summary["config"]["out_dir"], out_dir=str(tmp_path), seconds=0.5, model=TINY,
        batch_size=4, compile=False, device="cpu", evaluations=1, eval_batches=1, eval_batch_size=2,
        final_eval_batches=1, main_config="speedrun", muon_lrs=[0.02], samples=2, sample_tokens=8,
    )  # fmt: skip
    results = run_experiment(main)
    out = tmp_path / "main_experiment"
    assert [r["name"] for r in results["runs"]] == ["main_speedrun"] and results["runs"][0]["optimizer"] == "muon"
    assert [s["prompt"] for s in results["samples"]] == ["Once upon a time", "The function returns"]
    assert "## Prompt: 'The function returns'" in (out / "samples.md").read_text()
    assert not list(out.rglob("checkpoint.pt"))
