"""The experiment runs end to end on a tiny real checkpoint: GRPO's and expert iteration's ``--prompt`` picks the
prompt, stop strings and reward together, the zero-shot baseline reports every prompt at every temperature,
reproducibly, and the SFT sweep trains on targets that end in EOS."""

import json

import pytest
from cs336_alignment.experiments import expert_iteration_sweep, grpo_run, sft_sweep
from cs336_alignment.experiments.configs import (
    ExpertIterationSweepConfig,
    GRPOExperimentConfig,
    MathBaselineConfig,
    SFTSweepConfig,
)
from cs336_alignment.experiments.math_baseline import run_math_baseline
from cs336_alignment.loop_configs import ExpertIterationConfig, SFTConfig
from cs336_alignment.math_data import r1_zero_prompt
from cs336_alignment.math_eval import question_only_prompt
from cs336_alignment.rewards import question_only_reward_fn, r1_zero_reward_fn
from cs336_alignment.run_config import PolicyConfig

from tests.conftest import TINY_CHECKPOINT_GRPO


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def recording_sampler(make_sampler, calls: list):
    """``make_sampler`` whose samplers append ``(prompts, params)`` of every ``generate`` to ``calls``."""

    def make(*args):
        sampler = make_sampler(*args)
        real_generate = sampler.generate

        def generate(prompts, params):
            calls.append((list(prompts), params))
            return real_generate(prompts, params)

        sampler.generate = generate
        return sampler

    return make


@pytest.mark.parametrize(
    ("prompt", "prompt_fn", "stop", "reward_fn"),
    [
        ("r1_zero", r1_zero_prompt, ("</answer>",), r1_zero_reward_fn),
        ("question_only", question_only_prompt, (), question_only_reward_fn),
    ],
)
def test_grpo_prompt_option_sets_prompt_stop_and_reward_of_training_and_evaluation(
    tiny_checkpoint, tmp_path, monkeypatch, prompt, prompt_fn, stop, reward_fn
):
    generate_calls, train_calls = [], []
    real_train = grpo_run.train_grpo

    def recording_train(*args, **kwargs):
        train_calls.append((args, kwargs))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(grpo_run, "policy_sampler", recording_sampler(grpo_run.policy_sampler, generate_calls))
    monkeypatch.setattr(grpo_run, "train_grpo", recording_train)
    cfg = GRPOExperimentConfig(
        policy=tiny_checkpoint,
        grpo=TINY_CHECKPOINT_GRPO,
        out_dir=str(tmp_path),
        prompt=prompt,
        subset_size=2,
        val_size=2,
    )
    row = grpo_run.run_grpo_experiment(cfg)

    ((args, kwargs),) = train_calls
    style = args[4]
    assert style.reward_fn is reward_fn and style.prompt_fn is prompt_fn and style.stop == stop
    # rollouts (2 samples per question at temperature 1) and evaluations (greedy) alike
    assert {(params.n, params.temperature) for _, params in generate_calls} == {(2, 1.0), (1, 0.0)}
    for prompts, params in generate_calls:
        assert params.stop == stop
        assert all(text.endswith("<think>") == (prompt == "r1_zero") for text in prompts)
    generations = _read_jsonl(tmp_path / "generations.jsonl")
    assert [g["prompt"] for g in generations] == [prompt_fn(g["question"]) for g in generations]
    assert all(g["reward"] == reward_fn(g["response"], g["ground_truth"])["reward"] for g in generations)
    report = json.loads((tmp_path / "grpo.json").read_text())
    assert report["prompt"] == prompt and f"({prompt} prompt)" in report["title"]
    assert row["run"].startswith("prompt=question_only") == (prompt == "question_only")


def test_grpo_unknown_prompt_fails_before_the_model_loads(tmp_path):
    cfg = GRPOExperimentConfig(policy=PolicyConfig(model=str(tmp_path / "missing")), prompt="chat")
    with pytest.raises(ValueError, match="unknown prompt 'chat'"):
        grpo_run.run_grpo_experiment(cfg)


def test_expert_iteration_prompt_option_sets_prompt_stop_and_reward_of_rollouts_and_evaluation(
    tiny_checkpoint, tmp_path, monkeypatch
):
    generate_calls, styles = [], []
    real_run = expert_iteration_sweep.run_expert_iteration

    def recording_run(policy, tokenizer, sampler, problems, style, *args, **kwargs):
        styles.append(style)
        return real_run(policy, tokenizer, sampler, problems, style, *args, **kwargs)

    sampler_factory = recording_sampler(expert_iteration_sweep.policy_sampler, generate_calls)
    monkeypatch.setattr(expert_iteration_sweep, "policy_sampler", sampler_factory)
    monkeypatch.setattr(expert_iteration_sweep, "run_expert_iteration", recording_run)
    cfg = ExpertIterationSweepConfig(
        policy=tiny_checkpoint,
        ei=ExpertIterationConfig(questions_per_step=2, ei_max_tokens=4),
        sft=SFTConfig(batch_size=2, gradient_accumulation_steps=1),
        out_dir=str(tmp_path),
        settings=["2x1"],
        prompt="question_only",
        subset_size=2,
        val_size=1,
    )
    expert_iteration_sweep.run_expert_iteration_sweep(cfg)

    (style,) = styles
    assert style.prompt_fn is question_only_prompt and style.reward_fn is question_only_reward_fn
    # rollouts (2 samples per question at temperature 1) and evaluations (greedy) alike
    assert {(params.n, params.temperature) for _, params in generate_calls} == {(2, 1.0), (1, 0.0)}
    for prompts, params in generate_calls:
        assert params.stop == () and not any(text.endswith("<think>") for text in prompts)
    report = json.loads((tmp_path / "expert_iteration_experiment.json").read_text())
    assert report["prompt"] == "question_only" and "(question_only prompt" in report["title"]
    # the setting's G and rounds are recorded with its run, not the ``ei`` defaults (4, 5) it overrode
    (run,) = report["runs"]
    assert (run["rollouts_per_question"], run["n_ei_steps"]) == (2, 1) and "rollouts_per_question" not in report["ei"]


def test_expert_iteration_unknown_prompt_fails_before_the_model_loads(tmp_path):
    cfg = ExpertIterationSweepConfig(policy=PolicyConfig(model=str(tmp_path / "missing")), prompt="chat")
    with pytest.raises(ValueError, match="unknown prompt 'chat'"):
        expert_iteration_sweep.run_expert_iteration_sweep(cfg)


def test_math_baseline_reports_each_prompt_at_each_temperature_reproducibly(tiny_checkpoint, tmp_path):
    def run(out_dir):
        cfg = MathBaselineConfig(
            policy=tiny_checkpoint,
            out_dir=str(out_dir),
            prompts=["r1_zero", "question_only"],
            temperatures=[0.0, 1.0],
            subset_size=3,
            max_tokens=6,
        )
        return run_math_baseline(cfg)

    rows = run(tmp_path / "a")
    assert [(r["prompt"], r["temperature"]) for r in rows] == [
        ("r1_zero", 0.0),
        ("r1_zero", 1.0),
        ("question_only", 0.0),
        ("question_only", 1.0),
    ]
    for row in rows:
        assert row["n"] == 3 and "[" in row["reward"]  # accuracy with its Wilson interval
        assert (
            row["correct"] + row["formatted_wrong_answer"] + row["unformatted"] + row["unformatted_right_answer"] == 3
        )
    report = json.loads((tmp_path / "a" / "math_baseline.json").read_text())
    assert [s["temperature"] for s in report["summaries"]] == [0.0, 1.0, 0.0, 1.0]
    assert "temperature 0, 1, top-p 1" in report["title"]
    markdown = (tmp_path / "a" / "math_baseline.md").read_text()
    assert "Failures: question_only T=1" in markdown and "temperature (0: greedy)" in markdown
    assert (tmp_path / "a" / "math_baseline.png").stat().st_size > 0
    first = _read_jsonl(tmp_path / "a" / "generations.jsonl")
    responses = {(g["prompt_style"], g["temperature"]): [] for g in first}
    for g in first:
        responses[g["prompt_style"], g["temperature"]].append(g["response"])
    assert responses["r1_zero", 0.0] != responses["r1_zero", 1.0]  # sampled, not greedy
    run(tmp_path / "b")
    assert _read_jsonl(tmp_path / "b" / "generations.jsonl") == first  # seeded: a rerun draws the same samples


@pytest.mark.parametrize("temperatures", [[], [-0.5], [1.0, 1.0]])
def test_math_baseline_rejects_bad_temperatures(temperatures):
    with pytest.raises(ValueError, match="--temperatures"):
        MathBaselineConfig(temperatures=temperatures)


def test_sft_sweep_trains_on_targets_that_end_in_eos_and_saves_the_policy(tiny_checkpoint, tmp_path, monkeypatch):
    trained = []

    def spy(policy, tokenizer, examples, *args, **kwargs):
        trained.extend(examples)
        return train_sft(policy, tokenizer, examples, *args, **kwargs)

    train_sft = sft_sweep.train_sft
    monkeypatch.setattr(sft_sweep, "train_sft", spy)
    cfg = SFTSweepConfig(
        policy=tiny_checkpoint,
        sft=SFTConfig(sft_steps=1, batch_size=2, gradient_accumulation_steps=1),
        out_dir=str(tmp_path / "sweep"),
        train_sizes=[3],
        subset_size=2,
        val_size=1,
        max_tokens=4,
        save_checkpoint=str(tmp_path / "sft"),
    )
    rows = sft_sweep.run_sft_sweep(cfg)
    assert [row["train_size"] for row in rows] == [3] and len(trained) == 3
    assert all(response.endswith(" </answer><|endoftext|>") for _, response in trained)
    assert (tmp_path / "sft" / "config.json").is_file()
