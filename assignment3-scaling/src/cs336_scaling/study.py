"""A budgeted scaling study end to end: build the API (remote or in-process), plan and run the study, fit, write
the report, and optionally train the prediction at the target.

In-process, ``service.time_budget`` first times probe runs on the workers and picks the largest ``flops_scale``
whose study and check fit it (``study_timing``) and whose check run reads each token once;
``service.workers_per_device`` with ``service.processes`` trains several runs per GPU at once, each in its own
process (small models leave a GPU mostly idle), and the planner asks independent queries concurrently.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from cs336_basics.data import load_tokens
from cs336_basics.model import ModelConfig

from cs336_scaling.client import HttpTrainingApi, InProcessTrainingApi
from cs336_scaling.model_shape import flops_parameters, handout_parameters
from cs336_scaling.planner import ScalingStudy, StudyResult, choose_levels
from cs336_scaling.run_spec import RunSpec
from cs336_scaling.service import TrainingService
from cs336_scaling.store import Store
from cs336_scaling.study_config import CheckConfig, StudyConfig
from cs336_scaling.study_report import study_json, write_study_report
from cs336_scaling.study_timing import StudyClock, probe_run_time
from cs336_scaling.training_run import ScaleConfig, TrainingSetup, vocab_size_of
from cs336_scaling.workers import LocalWorkerPool, local_devices

STUDY_KEY = "study"  # the in-process store's one key


def run_study(config: StudyConfig, command: list[str] | None = None) -> dict:
    """Run the study described by ``config``; write ``report.md``, ``study.json`` and plots to ``out_dir``; return
    what ``study.json`` holds. ``command`` (default ``sys.argv``) is recorded in the report's setting."""
    started = time.perf_counter()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    setting: dict = {"command": " ".join(sys.argv if command is None else command)}
    if not config.in_process:
        api = HttpTrainingApi(config.api.url, config.api.api_key)
        study = ScalingStudy(api, config.plan, handout_parameters)
        lines = [f"- API at {config.api.url}; N = 12 · num_layers · d_model² (the handout's count)"]
        result = study.run()
        setting["study_seconds"] = time.perf_counter() - started
        report = write_study_report(result, out, setting_lines=lines, setting=setting)
        print(f"wrote {report} after {setting['study_seconds']:.0f}s", flush=True)
        api.close()
        return study_json(result, None, setting)
    with InProcessStudy(config, setting) as local:
        return local.run(started)


class InProcessStudy:
    """The service's store, worker pool and training runs without HTTP, and the study (and check) run on them."""

    def __init__(self, config: StudyConfig, setting: dict):
        service = config.service
        self.config, self.setting = config, setting
        self.vocab = service.vocab_size or vocab_size_of(service.tokens)
        self.setup = TrainingSetup(
            tokens_path=service.tokens,
            vocab_size=self.vocab,
            scale=ScaleConfig(service.flops_scale, service.context_length, service.batch_divisor),
            eval_sequences=service.eval_sequences,
            seed=config.plan.seed,
            compile=service.compile,
        )
        self.corpus_tokens = len(load_tokens(service.tokens))
        devices = local_devices(service.devices, service.workers_per_device)
        self.pool = LocalWorkerPool(self.setup, devices, service.processes)
        store = Store(service.db or Path(config.out_dir) / "api.sqlite")
        if STUDY_KEY not in {key for key, _, _ in store.keys()}:
            store.create_key(config.plan.budget, STUDY_KEY)
        self.service = TrainingService(store, self.pool)
        self.api = InProcessTrainingApi(self.service, STUDY_KEY)
        self.base = ModelConfig(vocab_size=self.vocab, context_length=service.context_length)

    def __enter__(self) -> InProcessStudy:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown()
        self.service.close()

    @property
    def workers(self) -> int:
        return len(self.pool.devices)

    def study_at(self, flops_scale: float) -> ScalingStudy:
        """The study at a scale: the prior counts tokens actually trained, and every worker takes a query."""
        plan = self.config.plan
        plan = replace(
            plan, prior_tokens_per_parameter=plan.prior_tokens_per_parameter / flops_scale, concurrency=self.workers
        )
        return ScalingStudy(self.api, plan, flops_parameters, base=self.base)

    def run(self, started: float) -> dict:
        config, setting, clock = self.config, self.setting, None
        if config.service.time_budget:
            clock = self.calibrate()
        scale = self.setup.scale
        study = self.study_at(scale.flops_scale)
        lines = [
            "- in-process service (the HTTP layer's TrainingService, SQLite store and worker pool, no HTTP): "
            f"{self.corpus_tokens:,} tokens from `{config.service.tokens}`, vocabulary {self.vocab}",
            f"- scale: flops_scale {scale.flops_scale:g} (a query of C FLOPs trains C × flops_scale), "
            f"context {scale.context_length}, batch = requested / {scale.batch_divisor}",
            "- N = the service's count: every non-embedding weight, output layer included (C = 6ND)",
            f"- {self.workers} workers ({', '.join(self.pool.devices)}), each in its own process: "
            f"{config.service.processes}; models compiled with torch.compile: {config.service.compile}",
        ]
        setting.update(
            workers=list(self.pool.devices),
            processes=config.service.processes,
            compile=config.service.compile,
            flops_scale=scale.flops_scale,
            context_length=scale.context_length,
            eval_sequences=self.setup.eval_sequences,
            batch_divisor=scale.batch_divisor,
            vocab_size=self.vocab,
            corpus_tokens=self.corpus_tokens,
        )
        result = study.run()
        setting["study_seconds"] = time.perf_counter() - started
        report = write_study_report(result, config.out_dir, setting_lines=lines, setting=setting)
        print(f"wrote {report} after {setting['study_seconds']:.0f}s", flush=True)
        check = None
        if config.check.train and result.prediction is not None:
            check = check_runs(study, result, self.pool, config.check, clock, started)
            setting["total_seconds"] = time.perf_counter() - started
            report = write_study_report(
                result, config.out_dir, setting_lines=lines, check=check, setting=setting, redraw_fit_plots=False
            )
            print(f"wrote {report} after {setting['total_seconds']:.0f}s", flush=True)
        print(json.dumps({"prediction": asdict(result.prediction) if result.prediction else None}, default=str))
        return study_json(result, check, setting)

    def calibrate(self) -> StudyClock:
        """Time probe runs, choose the scale (``choose_flops_scale``), and set it on the pool; the study's clock."""
        plan, check = self.config.plan, self.config.check
        # the widest phase: the sweep's pairs, a level's sizes, or the check runs
        width = max(len(plan.learning_rates) * len(plan.batch_sizes), plan.sizes_per_level, 3 if check.train else 1)
        run_time, probes = probe_run_time(self.pool, self.setup, concurrent=width)
        tokens_per_step = self.setup.scale.tokens_per_step(plan.batch_sizes[0])

        def clock_at(flops_scale: float) -> StudyClock:
            return StudyClock(self.study_at(flops_scale), run_time, flops_scale, tokens_per_step, self.workers)

        train_tokens = int(self.corpus_tokens * (1 - self.setup.validation_fraction))
        flops_scale, calibration = choose_flops_scale(self.config.service.time_budget, check, clock_at, train_tokens)
        self.setting["calibration"] = {**calibration, "probes": [asdict(p) for p in probes]}
        self.setup = self.pool.setup = replace(self.setup, scale=replace(self.setup.scale, flops_scale=flops_scale))
        print(f"calibration {calibration} -> flops_scale {flops_scale}", flush=True)
        return clock_at(flops_scale)


def choose_flops_scale(
    time_budget: float, check: CheckConfig, clock_at: Callable[[float], StudyClock], train_tokens: int
) -> tuple[float, dict]:
    """Largest scale whose study (and check) fit ``time_budget`` seconds by :class:`StudyClock` and whose check run
    at the Chinchilla prior reads no more tokens than the training split holds; but at least the scale at which
    ``min_levels`` levels have a prior optimum above the smallest allowed shape. Two significant digits."""
    study = clock_at(1.0).study
    plan = study.config  # at scale 1 its prior counts tokens actually trained

    def seconds(scale: float) -> float:
        clock = clock_at(scale)
        checks = clock.check_seconds(plan.target_flops, check.neighbours) if check.train else 0.0
        return clock.study_seconds() + checks

    # prior optimum at the target: D = r N and C = 6 N D give D = sqrt(r C / 6)
    by_data = 6 * (0.9 * train_tokens) ** 2 / (plan.prior_tokens_per_parameter * plan.target_flops)
    block = choose_levels((1 - plan.sweep_fraction) * plan.budget / 1.1, plan, eligible=lambda c: True)
    # ScalingStudy.eligible: sqrt(C s / (6 r)) >= 1.25 N_min for the min_levels-th level from the top
    floor = 6 * plan.prior_tokens_per_parameter * (1.25 * study.smallest) ** 2 / block[-plan.min_levels]
    low, high = math.log(floor), math.log(min(by_data, 1.0))
    if high <= low or seconds(floor) >= time_budget:
        scale = min(floor, 1.0)
    else:
        for _ in range(40):  # the study's time grows with the scale: bisect in log space
            middle = (low + high) / 2
            low, high = (middle, high) if seconds(math.exp(middle)) <= time_budget else (low, middle)
        scale = math.exp(low)
    step = 10.0 ** (math.floor(math.log10(scale)) - 1)
    scale = min(max(math.floor(scale / step) * step, floor), 1.0)
    clock = clock_at(scale)
    return scale, {
        "run_time": asdict(clock.run_time),
        "workers": clock.workers,
        "by_data": by_data,
        "floor": floor,
        "estimated_seconds": seconds(scale),
    }


def check_runs(
    study: ScalingStudy,
    result: StudyResult,
    pool: LocalWorkerPool,
    check: CheckConfig,
    clock: StudyClock | None,
    started: float,
) -> dict:
    """Train the predicted model (and optionally neighbours) at the target budget, outside the API's budget, all at
    once on the pool's workers. A neighbour whose estimated time would end past ``check.deadline``, or that would
    train more than ``check.max_steps`` steps, is skipped."""
    p = result.prediction
    shapes = [p.shape]
    scale = pool.setup.scale
    for factor in (g for f in check.neighbours for g in (1 / f, f)):
        shape = study.shape_for(p.parameters * factor)
        parameters = study.parameters_of(shape)
        expected = clock.run_seconds(parameters, p.target_flops) if clock else 0.0
        steps = p.target_flops * scale.flops_scale / (6 * parameters * scale.tokens_per_step(p.batch_size))
        if check.deadline and time.perf_counter() - started + expected > check.deadline:
            print(f"[check] skipping d={shape.d_model} L={shape.num_layers}: ~{expected:.0f}s past the deadline")
        elif check.max_steps and steps > check.max_steps:
            print(f"[check] skipping d={shape.d_model} L={shape.num_layers}: {steps:.0f} steps")
        elif shape not in shapes:
            shapes.append(shape)
    futures = {  # smallest first: it trains the most steps
        i: pool.submit(RunSpec.for_model(s, p.batch_size, p.learning_rate, p.target_flops))
        for i, s in sorted(enumerate(shapes), key=lambda item: study.parameters_of(item[1]))
    }
    runs = []
    for i, shape in enumerate(shapes):
        run = futures[i].result()
        print(f"[check] d={shape.d_model} L={shape.num_layers}: loss {run.loss:.4f} in {run.seconds:.0f}s", flush=True)
        runs.append(
            {"d_model": shape.d_model, "num_layers": shape.num_layers, "num_heads": shape.num_heads, **asdict(run)}
        )
    return {"loss": runs[0]["loss"], "run": runs[0], "neighbours": runs[1:]}
