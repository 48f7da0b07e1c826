"""Plan and run a budgeted scaling-law study, fit it, predict the best model for the target, write a report.

Against a running API (ours, or the course's):

    uv run python assignment3-scaling/scripts/plan_study.py --url http://127.0.0.1:8000 --api-key KEY --out study

In-process (no HTTP server: the service's own store, worker pool and training runs), with the predicted
model trained at the target budget to check the prediction:

    uv run python assignment3-scaling/scripts/plan_study.py --tokens tokens.bin --out study --check \\
        --flops-scale 1e-3 --context-length 256

``--time-budget S`` (in-process) instead times probe runs on the workers first and picks the largest
``--flops-scale`` whose study and check fit about S seconds (``cs336_scaling.study_timing``) and whose check
run reads each token once. ``--workers-per-device K --processes`` trains K runs per GPU at once, each in its own
process (small models leave a GPU mostly idle); the planner asks independent queries concurrently.
After a pilot study has fixed the prior and the hyperparameters, ``--all-levels-at-once`` plans every level up
front, ``--aspect-ratio/--aspect-weight`` keep the shapes in one family and ``--optimum-method joint`` fits one
curvature to all levels; ``--check-neighbours 2 4`` trains the IsoFLOPs profile around the prediction at the
target (see the package README for the GPU study's command).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cs336_basics.data import load_tokens
from cs336_scaling.client import HttpTrainingApi, InProcessTrainingApi, TrainingApi
from cs336_scaling.isoflops import OptimumMethod
from cs336_scaling.planner import PlannerConfig, ScalingStudy, all_shapes, choose_levels, handout_parameters
from cs336_scaling.run_spec import RunSpec, flops_parameters, model_config
from cs336_scaling.service import TrainingService
from cs336_scaling.store import Store
from cs336_scaling.study_report import study_json, write_study_report
from cs336_scaling.study_timing import StudyClock, probe_run_time
from cs336_scaling.training_run import ScaleConfig, TrainingSetup, vocab_size_of
from cs336_scaling.workers import LocalWorkerPool, local_devices


@dataclass
class StudyArgs:
    out: Path
    url: str | None
    api_key: str | None
    tokens: str | None
    vocab_size: int | None
    db: str | None
    flops_scale: float
    time_budget: float | None
    context_length: int
    batch_divisor: int
    eval_sequences: int
    devices: str
    workers_per_device: int
    processes: bool
    compile: bool
    check: bool
    check_neighbours: list[float]
    deadline: float | None
    check_max_steps: int | None
    budget: float
    target: float
    sizes_per_level: int
    min_levels: int
    max_levels: int
    size_spread: float
    prior_tokens_per_parameter: float
    all_levels_at_once: bool
    aspect_ratio: float
    aspect_weight: float
    optimum_method: str
    learning_rates: list[float]
    batch_sizes: list[int]
    bootstrap: int
    seed: int


def parse_args(argv: list[str] | None = None) -> StudyArgs:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md, study.json and plots")
    remote = parser.add_argument_group("a running API")
    remote.add_argument("--url", default=None)
    remote.add_argument("--api-key", default=None)
    local = parser.add_argument_group("in-process service")
    local.add_argument("--tokens", default=None, help="uint16 token file to train on")
    local.add_argument("--vocab-size", type=int, default=None, help="default: largest token id + 1")
    local.add_argument("--db", default=None, help="SQLite store (default: OUT/api.sqlite)")
    local.add_argument("--flops-scale", type=float, default=1.0, help="fraction of train_flops actually trained")
    local.add_argument("--time-budget", type=float, default=None, help="seconds: choose --flops-scale to fit")
    local.add_argument("--context-length", type=int, default=512)
    local.add_argument("--batch-divisor", type=int, default=1)
    local.add_argument(
        "--eval-sequences",
        type=int,
        default=TrainingSetup.eval_sequences,
        help="held-out windows scoring each run (fewer: cheaper runs, noisier losses)",
    )
    local.add_argument("--devices", default="auto", help="'auto' (every GPU, else the CPU), 'cpu', 'cuda:0,cuda:1'")
    local.add_argument("--workers-per-device", type=int, default=1, help="runs sharing each device at once")
    local.add_argument("--processes", action="store_true", help="each worker trains in its own process")
    local.add_argument("--compile", action="store_true", help="torch.compile each run's model (pays off on GPUs)")
    local.add_argument("--check", action="store_true", help="train the predicted model at the target budget")
    local.add_argument(
        "--check-neighbours",
        type=float,
        nargs="*",
        default=[],
        help="also train sizes each factor smaller and larger (2 4: the IsoFLOPs profile at the target)",
    )
    local.add_argument(
        "--deadline", type=float, default=None, help="seconds since start after which no neighbour check starts"
    )
    local.add_argument("--check-max-steps", type=int, default=None, help="skip neighbour checks longer than this")
    plan = parser.add_argument_group("plan")
    defaults = PlannerConfig()
    plan.add_argument("--budget", type=float, default=defaults.budget)
    plan.add_argument("--target", type=float, default=defaults.target_flops)
    plan.add_argument("--sizes-per-level", type=int, default=defaults.sizes_per_level)
    plan.add_argument("--min-levels", type=int, default=defaults.min_levels)
    plan.add_argument("--max-levels", type=int, default=defaults.max_levels)
    plan.add_argument("--size-spread", type=float, default=defaults.size_spread)
    plan.add_argument(
        "--prior-tokens-per-parameter",
        type=float,
        default=defaults.prior_tokens_per_parameter,
        help="Chinchilla prior D = r N in tokens actually trained (in-process, divided by the flops scale)",
    )
    plan.add_argument(
        "--all-levels-at-once",
        action="store_true",
        help="centre every level on the prior and ask all levels together (faster on a pool of workers)",
    )
    plan.add_argument("--aspect-ratio", type=float, default=defaults.aspect_ratio, help="preferred d_model / layers")
    plan.add_argument(
        "--aspect-weight", type=float, default=defaults.aspect_weight, help="how strongly shapes keep that ratio"
    )
    plan.add_argument(
        "--optimum-method",
        choices=[m.value for m in OptimumMethod],
        default=defaults.optimum_method.value,
        help="per-level optimum the prediction uses (the others are reported for comparison)",
    )
    plan.add_argument("--learning-rates", type=float, nargs="+", default=list(defaults.learning_rates))
    plan.add_argument("--batch-sizes", type=int, nargs="+", default=list(defaults.batch_sizes))
    plan.add_argument("--bootstrap", type=int, default=defaults.bootstrap)
    plan.add_argument("--seed", type=int, default=0)
    args = StudyArgs(**vars(parser.parse_args(argv)))
    if (args.url is None) == (args.tokens is None):
        parser.error("give either --url and --api-key (a running API) or --tokens (in-process)")
    if args.url is not None and (args.api_key is None or args.check or args.time_budget):
        parser.error("--url needs --api-key; --check and --time-budget need the in-process service (--tokens)")
    return args


def planner_config(args: StudyArgs, flops_scale: float) -> PlannerConfig:
    return PlannerConfig(
        budget=args.budget,
        target_flops=args.target,
        sizes_per_level=args.sizes_per_level,
        min_levels=args.min_levels,
        max_levels=args.max_levels,
        size_spread=args.size_spread,
        prior_tokens_per_parameter=args.prior_tokens_per_parameter / flops_scale,
        adaptive_levels=not args.all_levels_at_once,
        aspect_ratio=args.aspect_ratio,
        aspect_weight=args.aspect_weight,
        optimum_method=OptimumMethod(args.optimum_method),
        learning_rates=tuple(args.learning_rates),
        batch_sizes=tuple(args.batch_sizes),
        bootstrap=args.bootstrap,
        seed=args.seed,
    )


def choose_flops_scale(
    args: StudyArgs, clock_at: Callable[[float], StudyClock], train_tokens: int
) -> tuple[float, dict]:
    """Largest scale whose study and check runs fit ``time_budget`` by :class:`StudyClock` and whose check run
    at the Chinchilla prior reads no more tokens than the training split holds; but at least the scale at which
    ``min_levels`` levels have a prior optimum above the smallest allowed shape."""

    def seconds(scale: float) -> float:
        clock = clock_at(scale)
        checks = clock.check_seconds(args.target, args.check_neighbours) if args.check else 0.0
        return clock.study_seconds() + checks

    # prior optimum at the target: D = r N and C = 6 N D give D = sqrt(r C / 6)
    by_data = 6 * (0.9 * train_tokens) ** 2 / (args.prior_tokens_per_parameter * args.target)
    config = planner_config(args, 1.0)
    block = choose_levels((1 - config.sweep_fraction) * config.budget / 1.1, config, eligible=lambda c: True)
    smallest = min(clock_at(1.0).study.parameters_of(shape) for shape in all_shapes(config.head_dim))
    # ScalingStudy.eligible: sqrt(C s / (6 r)) >= 1.25 N_min for the min_levels-th level from the top
    floor = 6 * args.prior_tokens_per_parameter * (1.25 * smallest) ** 2 / block[-config.min_levels]
    low, high = math.log(floor), math.log(min(by_data, 1.0))
    if high <= low or seconds(floor) >= args.time_budget:
        scale = min(floor, 1.0)
    else:
        for _ in range(40):  # the study's time grows with the scale: bisect in log space
            middle = (low + high) / 2
            low, high = (middle, high) if seconds(math.exp(middle)) <= args.time_budget else (low, middle)
        scale = math.exp(low)
    step = 10.0 ** (math.floor(math.log10(scale)) - 1)
    scale = min(max(math.floor(scale / step) * step, floor), 1.0)  # two significant digits, at least the floor
    return scale, {
        "run_time": asdict(clock_at(scale).run_time),
        "workers": clock_at(scale).workers,
        "by_data": by_data,
        "floor": floor,
        "estimated_seconds": seconds(scale),
    }


def service_parameter_count(vocab_size: int, context_length: int):
    """The service's ``N`` (non-embedding weights incl. the output layer) for a ``(d_model, num_layers)``; cached,
    since the time-budget search builds a study (which counts every allowed shape) for each scale it tries."""

    @functools.cache
    def count(d_model: int, num_layers: int) -> float:
        spec = RunSpec(d_model, num_layers, 2, 128, 1e-3, 0)
        return float(flops_parameters(model_config(spec, vocab_size, context_length)))

    return count


def check_runs(
    study: ScalingStudy, result, pool: LocalWorkerPool, args: StudyArgs, clock: StudyClock | None, started: float
) -> dict:
    """Train the predicted model (and optionally neighbours) at the target budget, outside the API's budget, all at
    once on the pool's workers. A neighbour whose estimated time would end past ``--deadline``, or that would train
    more than ``--check-max-steps`` steps, is skipped."""
    p = result.prediction
    shapes = [p.shape]
    scale = pool.setup.scale
    for factor in (g for f in args.check_neighbours for g in (1 / f, f)):
        shape = study.shape_for(p.parameters * factor)
        expected = clock.run_seconds(study.parameters_of(shape), p.target_flops) if clock else 0.0
        steps = (
            p.target_flops * scale.flops_scale / (6 * study.parameters_of(shape) * scale.tokens_per_step(p.batch_size))
        )
        if args.deadline and time.perf_counter() - started + expected > args.deadline:
            print(f"[check] skipping d={shape.d_model} L={shape.num_layers}: ~{expected:.0f}s past the deadline")
        elif args.check_max_steps and steps > args.check_max_steps:
            print(f"[check] skipping d={shape.d_model} L={shape.num_layers}: {steps:.0f} steps")
        elif shape not in shapes:
            shapes.append(shape)
    futures = {  # smallest first: it trains the most steps
        i: pool.submit(
            RunSpec(s.d_model, s.num_layers, s.num_heads, p.batch_size, p.learning_rate, int(p.target_flops))
        )
        for i, s in sorted(enumerate(shapes), key=lambda item: study.parameters_of(item[1]))
    }
    runs = []
    for i, shape in enumerate(shapes):
        run = futures[i].result()
        print(f"[check] d={shape.d_model} L={shape.num_layers}: loss {run.loss:.4f} in {run.seconds:.0f}s", flush=True)
        runs.append({**asdict(shape), **asdict(run)})
    return {"loss": runs[0]["loss"], "run": runs[0], "neighbours": runs[1:]}


def main(argv: list[str] | None = None) -> dict:
    """Run the study; returns what ``study.json`` holds."""
    args = parse_args(argv)
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    setting: dict = {"command": " ".join(sys.argv if argv is None else ["plan_study.py", *argv])}
    setup = pool = service = clock = None
    check = None
    if args.url is not None:
        api: TrainingApi = HttpTrainingApi(args.url, args.api_key)
        config = planner_config(args, 1.0)
        study = ScalingStudy(api, config, handout_parameters)
        lines = [f"- API at {args.url}; N = 12 · num_layers · d_model² (the handout's count)"]
    else:
        vocab = args.vocab_size or vocab_size_of(args.tokens)
        scale = ScaleConfig(args.flops_scale, args.context_length, args.batch_divisor)
        setup = TrainingSetup(
            tokens_path=args.tokens,
            vocab_size=vocab,
            scale=scale,
            eval_sequences=args.eval_sequences,
            seed=args.seed,
            compile=args.compile,
        )
        corpus_tokens = len(load_tokens(args.tokens))
        pool = LocalWorkerPool(setup, local_devices(args.devices, args.workers_per_device), args.processes)
        store = Store(args.db or args.out / "api.sqlite")
        key = "study"
        if key not in {k for k, _, _ in store.keys()}:
            store.create_key(args.budget, key)
        service = TrainingService(store, pool)
        api = InProcessTrainingApi(service, key)
        count = service_parameter_count(vocab, setup.scale.context_length)
        workers = len(pool.devices)

        def study_at(flops_scale: float) -> ScalingStudy:
            return ScalingStudy(api, replace(planner_config(args, flops_scale), concurrency=workers), count)

        if args.time_budget:
            # the widest phase: the sweep's pairs, a level's sizes, or the check runs
            width = max(len(args.learning_rates) * len(args.batch_sizes), args.sizes_per_level, 3 if args.check else 1)
            run_time, probes = probe_run_time(pool, setup, concurrent=width)
            tokens_per_step = setup.scale.tokens_per_step(args.batch_sizes[0])

            def clock_at(flops_scale: float) -> StudyClock:
                return StudyClock(study_at(flops_scale), run_time, flops_scale, tokens_per_step, workers)

            train_tokens = int(corpus_tokens * (1 - setup.validation_fraction))
            flops_scale, calibration = choose_flops_scale(args, clock_at, train_tokens)
            setting["calibration"] = {**calibration, "probes": [asdict(p) for p in probes]}
            setup = pool.setup = replace(setup, scale=replace(setup.scale, flops_scale=flops_scale))
            clock = clock_at(flops_scale)
            print(f"calibration {calibration} -> flops_scale {flops_scale}", flush=True)
        study = study_at(setup.scale.flops_scale)
        lines = [
            "- in-process service (the HTTP layer's TrainingService, SQLite store and worker pool, no HTTP): "
            f"{corpus_tokens:,} tokens from `{args.tokens}`, vocabulary {vocab}",
            f"- scale: flops_scale {setup.scale.flops_scale:g} (a query of C FLOPs trains C × flops_scale), "
            f"context {setup.scale.context_length}, batch = requested / {setup.scale.batch_divisor}",
            "- N = the service's count: every non-embedding weight, output layer included (C = 6ND)",
            f"- {workers} workers ({', '.join(pool.devices)}), each in its own process: {args.processes}; "
            f"models compiled with torch.compile: {args.compile}",
        ]
        setting.update(
            workers=[f"{device}" for device in pool.devices],
            processes=args.processes,
            compile=args.compile,
            flops_scale=setup.scale.flops_scale,
            context_length=setup.scale.context_length,
            eval_sequences=setup.eval_sequences,
            batch_divisor=setup.scale.batch_divisor,
            vocab_size=vocab,
            corpus_tokens=corpus_tokens,
        )

    result = study.run()
    setting["study_seconds"] = time.perf_counter() - started
    report = write_study_report(result, args.out, setting_lines=lines, setting=setting)
    print(f"wrote {report} after {setting['study_seconds']:.0f}s", flush=True)
    if args.check and result.prediction is not None and setup is not None:
        check = check_runs(study, result, pool, args, clock, started)
        setting["total_seconds"] = time.perf_counter() - started
        report = write_study_report(
            result, args.out, setting_lines=lines, check=check, setting=setting, redraw_fit_plots=False
        )
        print(f"wrote {report} after {setting['total_seconds']:.0f}s", flush=True)
    if pool is not None:
        pool.shutdown()
        service.close()
    print(json.dumps({"prediction": asdict(result.prediction) if result.prediction else None}, default=str))
    return study_json(result, check, setting)


if __name__ == "__main__":
    main()
