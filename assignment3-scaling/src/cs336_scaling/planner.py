"""A budgeted scaling-law study against the training API: choose runs, query them, fit, and predict.

Strategy (the handout's setting: 2e18 FLOPs of queries to predict the best model for 1e19):

1. **Model shapes.** Every query is a shape (a ``cs336_basics`` ``ModelConfig``) from the API's ranges with
   ``d_model`` a multiple of 64 and heads of dimension 64 (2 to 16 heads). A wanted parameter count ``N`` maps
   to the shape whose count is closest in log space, ties broken towards ``d_model / num_layers ≈ 64``
   (Kaplan et al. find the loss flat over a wide band of aspect ratios, so one ratio serves all sizes).
   ``N`` is the handout's non-embedding count ``12 · num_layers · d_model²`` unless the caller knows better
   (the GPU study passes the service's exact count, which includes the output layer).
2. **IsoFLOPs levels.** At most ``1 - sweep_fraction`` of the budget (less a reserve for edge sizes, step 3)
   buys the highest block of consecutive allowed ``train_flops`` levels (at least ``min_levels``, extended
   downwards while it fits): higher levels mean a shorter extrapolation to the target.
   **Hyperparameters first.** What the grid leaves runs every pair of ``learning_rates × batch_sizes`` on
   one model at the largest level it affords (often the grid's top level); the best pair is used for every
   later run and recommended for the target. (The sweep's best run is also an IsoFLOPs point when its
   level is on the grid: the API answers a repeated query for free.)
3. **IsoFLOPs grid.** Each level trains ``sizes_per_level`` sizes log-spaced over a factor
   ``size_spread`` around a centre: Chinchilla's ``D = r N`` prior (``N = sqrt(C / 6r)``) for the first two
   levels, afterwards the power law fitted to the optima found so far, so the grid follows the data.
   Levels run from cheap to expensive. When a level's lowest loss sits at the edge of its sizes, one more
   size beyond that edge is bought (budget permitting), so every optimum is bracketed. With
   ``adaptive_levels=False`` every level is centred on the prior and all levels are asked at once, which a
   pool of workers finishes in about the time of the slowest run instead of the sum of the levels' slowest
   runs (choose the prior from a pilot study then).
4. **Fits.** Per level the optimum ``N_opt(C)``, with ``D_opt = C / 6 N_opt``, is the vertex of a parabola
   in ``log N`` (Hoffmann et al.) and, for comparison, the lowest-loss run (the handout's choice). The
   vertex is the default for predictions: sizes a factor 2 apart quantise the lowest-loss choice to that
   factor, which tilts the fitted exponent (on the synthetic law of the tests, 0.50 against the true 0.45,
   where the vertex gives 0.452); a level whose parabola opens downwards falls back to the lowest loss. Power laws
   ``N_opt = a C^α`` and ``D_opt = b C^β`` with bootstrap intervals, and ``L_opt(C) = E + A C^-γ`` on the
   optimal losses, predict the target. Only bracketed levels (lowest loss between two trained sizes) enter
   the fits when at least two are: an edge point only bounds its optimum, and a parabola through it puts the
   vertex wherever the curve's extrapolation lands (a GPU pilot's unbracketed lowest level tilted the
   exponent from ~0.5 to 1.6).
5. **Prediction.** The target's ``N_opt`` maps to a shape (step 1), trained with the swept hyperparameters
   for ``C / 6N`` tokens; its predicted loss is ``L_opt(target)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from cs336_basics.model import ModelConfig

from cs336_scaling.client import ApiError, TrainingApi
from cs336_scaling.isoflops import IsoFlopsFit, OptimumMethod, Run, degenerate_reasons, fit_isoflops
from cs336_scaling.model_shape import handout_parameters, with_shape
from cs336_scaling.power_law import SaturatingPowerLaw, fit_power_law, fit_saturating_power_law
from cs336_scaling.run_spec import D_MODEL_RANGE, NUM_HEADS_RANGE, NUM_LAYERS_RANGE, RunSpec
from cs336_scaling.study_config import PlannerConfig

ParameterCount = Callable[[ModelConfig], float]
HANDOUT_MODEL = ModelConfig(context_length=512)  # the course API's context; its vocabulary is not ours to know


def all_shapes(base: ModelConfig = HANDOUT_MODEL, head_dim: int = 64) -> list[ModelConfig]:
    """Every shape the API accepts with ``d_model`` a multiple of 64 and heads of ``head_dim`` (2 to 16 heads),
    as ``base`` (vocabulary, context) with that shape; ``ModelConfig`` refuses the heads that do not fit."""
    shapes = []
    for d_model in range(64, D_MODEL_RANGE[1] + 1, 64):
        heads = min(max(d_model // head_dim, NUM_HEADS_RANGE[0]), NUM_HEADS_RANGE[1])
        for layers in range(NUM_LAYERS_RANGE[0], NUM_LAYERS_RANGE[1] + 1):
            try:
                shapes.append(with_shape(base, d_model, layers, heads))
            except ValueError:
                break
    return shapes


def nearest_shape(
    parameters: float,
    shapes: list[ModelConfig],
    count: ParameterCount,
    aspect_ratio: float,
    aspect_weight: float = 0.05,
) -> ModelConfig:
    """The shape whose parameter count is closest to ``parameters`` (log scale), preferring the aspect ratio.

    ``aspect_weight`` trades the two: at 0.05 the size wins almost always; near 0.3 the shapes stay close to one
    family (ratio within ~2x), which matters for tiny models, where a 2-layer and a 10-layer model of one size
    differ in loss as much as sizes 4x apart."""

    def score(shape: ModelConfig) -> float:
        size_error = abs(math.log(count(shape) / parameters))
        return size_error + aspect_weight * abs(math.log(shape.d_model / shape.num_layers / aspect_ratio))

    return min(shapes, key=score)


@dataclass(frozen=True)
class Query:
    """One planned run and what the API answered (``loss``) or why it has none (``error``)."""

    phase: str  # "sweep", "isoflops" or "edge"
    spec: RunSpec
    parameters: float
    loss: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Prediction:
    """The recommended model for the target budget and what the fits expect of it."""

    target_flops: float
    n_opt: float
    n_opt_low: float
    n_opt_high: float
    shape: ModelConfig
    parameters: float
    tokens: float
    learning_rate: float
    batch_size: int
    loss: float


@dataclass
class StudyResult:
    config: PlannerConfig
    levels: list[float]
    sweep_level: float | None
    learning_rate: float
    batch_size: int
    queries: list[Query] = field(default_factory=list)
    flops_used: float = 0.0
    fit: IsoFlopsFit | None = None  # the one the prediction uses
    other_fits: list[IsoFlopsFit] = field(default_factory=list)  # the other optimum methods, for comparison
    loss_law: SaturatingPowerLaw | None = None
    prediction: Prediction | None = None
    warnings: list[str] = field(default_factory=list)  # reasons not to trust the fit, for the report
    degenerate: list[str] = field(default_factory=list)  # reasons the prediction is not a result (report: no result)

    def runs(self, phases: tuple[str, ...] = ("isoflops", "edge", "sweep")) -> list[Run]:
        """Answered queries with the chosen hyperparameters, one per (shape, budget), as IsoFLOPs runs."""
        seen: dict[tuple[float, float], Run] = {}
        for q in self.queries:
            chosen = q.spec.learning_rate == self.learning_rate and q.spec.batch_size == self.batch_size
            if q.loss is not None and q.phase in phases and chosen:
                seen[(q.parameters, q.spec.train_flops)] = Run(q.parameters, float(q.spec.train_flops), q.loss)
        return list(seen.values())


def choose_levels(grid_budget: float, config: PlannerConfig, eligible: Callable[[float], bool]) -> list[float]:
    """The highest block of consecutive allowed levels (at least ``min_levels``) that ``grid_budget`` buys.

    Each level costs ``sizes_per_level`` runs at its FLOPs; the block extends downwards while it stays
    affordable, up to ``max_levels`` levels. Returns the levels in ascending order.
    """
    levels = sorted(c for c in config.allowed_flops if eligible(c))
    k = config.sizes_per_level
    for top in range(len(levels) - 1, config.min_levels - 2, -1):
        block = levels[top - config.min_levels + 1 : top + 1]
        if k * sum(block) > grid_budget:
            continue
        below = top - config.min_levels
        while below >= 0 and len(block) < config.max_levels and k * (sum(block) + levels[below]) <= grid_budget:
            block.insert(0, levels[below])
            below -= 1
        return block
    raise ValueError(
        f"a budget of {grid_budget:.3g} FLOPs cannot buy {config.min_levels} levels of {k} runs among {levels}"
    )


def _level_by_size(result: StudyResult, flops: float) -> tuple[list[Run], int]:
    """The answered runs at one budget from smallest to largest, and the index of the lowest loss (-1 if none)."""
    level = sorted((r for r in result.runs() if r.compute_budget == flops), key=lambda r: r.parameters)
    return level, min(range(len(level)), key=lambda i: level[i].final_loss, default=-1)


class ScalingStudy:
    """Runs the strategy in the module docstring against any :class:`TrainingApi`."""

    def __init__(
        self,
        api: TrainingApi,
        config: PlannerConfig,
        count: ParameterCount = handout_parameters,
        log: Callable[[str], None] = print,
        base: ModelConfig = HANDOUT_MODEL,
    ):
        """``count`` gives a shape's ``N``; ``base`` the vocabulary and context every shape shares."""
        self.api = api
        self.config = config
        self.count = count
        self.log = log
        self.shapes = all_shapes(base, config.head_dim)
        self.smallest = min(count(s) for s in self.shapes)
        self.largest = max(count(s) for s in self.shapes)
        self._previous: list[dict] = []

    # sizes
    def prior_n_opt(self, flops: float) -> float:
        """Chinchilla's rule ``D = r N`` with ``C = 6 N D``: ``N = sqrt(C / 6r)``."""
        return math.sqrt(flops / (6 * self.config.prior_tokens_per_parameter))

    def shape_for(self, parameters: float) -> ModelConfig:
        return nearest_shape(parameters, self.shapes, self.count, self.config.aspect_ratio, self.config.aspect_weight)

    def parameters_of(self, shape: ModelConfig) -> float:
        return float(self.count(shape))

    def level_shapes(self, center: float) -> list[ModelConfig]:
        half = math.log(self.config.size_spread) / 2
        targets = center * np.exp(np.linspace(-half, half, self.config.sizes_per_level))
        shapes = list(dict.fromkeys(self.shape_for(float(n)) for n in targets))
        return sorted(shapes, key=self.parameters_of)

    def eligible(self, flops: float) -> bool:
        """A level whose prior optimum lies clearly above the smallest shape the API allows.

        Below it the level's smaller sizes would all collapse onto that shape and its optimum could not be
        bracketed.
        """
        return self.prior_n_opt(flops) >= 1.25 * self.smallest

    # queries
    def ask(self, result: StudyResult, phase: str, shape: ModelConfig, flops: float, lr: float, batch: int) -> Query:
        return self.ask_all(result, phase, [(shape, flops, lr, batch)])[0]

    def ask_all(
        self, result: StudyResult, phase: str, wanted: list[tuple[ModelConfig, float, float, int]]
    ) -> list[Query]:
        """Answer independent queries, up to ``concurrency`` at a time (the API's workers train them in parallel).

        Which ones fit the budget is decided up front, in order, counting the ones before as spent, so the study
        never overspends however the runs interleave. Queries are recorded and logged in the order asked.
        """
        specs = [RunSpec.for_model(s, batch, lr, flops) for s, flops, lr, batch in wanted]
        planned = result.flops_used
        answers: dict[int, Query] = {}
        fresh: list[int] = []  # not answered before: recorded and logged below
        for i, ((shape, flops, _, _), spec) in enumerate(zip(wanted, specs)):
            known = next((q for q in result.queries if q.spec == spec and q.loss is not None), None)
            if known is not None:
                answers[i] = known
                continue
            fresh.append(i)
            paid = self._already_paid(spec)
            if planned + flops > self.config.budget and not paid:
                answers[i] = Query(phase, spec, self.parameters_of(shape), error="skipped: over the study budget")
            elif not paid:
                planned += flops
        to_run = [i for i in fresh if i not in answers]
        with ThreadPoolExecutor(max(1, min(self.config.concurrency, len(to_run)))) as threads:
            futures = {i: threads.submit(self._query, phase, specs[i], wanted[i][0]) for i in to_run}
            for i, future in futures.items():
                answers[i] = future.result()
        if to_run:
            result.flops_used = self.api.total_flops_used()
        queries = [answers[i] for i in range(len(wanted))]
        for i in fresh:
            query, (shape, flops, lr, batch) = answers[i], wanted[i]
            result.queries.append(query)
            shown = f"loss {query.loss:.4f}" if query.loss is not None else query.error
            self.log(
                f"[{phase}] C={flops:.0e} d={shape.d_model} L={shape.num_layers} N={query.parameters:.3g} "
                f"lr={lr:g} bs={batch}: {shown} (used {result.flops_used:.3g})"
            )
        return queries

    def _query(self, phase: str, spec: RunSpec, shape: ModelConfig) -> Query:
        parameters = self.parameters_of(shape)
        try:
            return Query(phase, spec, parameters, loss=self.api.loss(spec))
        except ApiError as err:
            if err.status not in (403, 500):
                raise
            return Query(phase, spec, parameters, error=err.message)

    def _already_paid(self, spec: RunSpec) -> bool:
        fields = ("d_model", "num_layers", "num_heads", "batch_size", "learning_rate", "train_flops")
        return any(all(run.get(f) == getattr(spec, f) for f in fields) for run in self._previous)

    # the study
    def combos(self) -> list[tuple[float, int]]:
        """The sweep's ``(learning_rate, batch_size)`` pairs."""
        return [(lr, bs) for lr in self.config.learning_rates for bs in self.config.batch_sizes]

    def plan(self) -> tuple[list[float], float | None]:
        """The IsoFLOPs levels (ascending) and the sweep's level (None: nothing to sweep) that the budget buys."""
        cfg = self.config
        sweeping = len(self.combos()) > 1
        reserve = 1 + 0.1 * cfg.edge_extensions  # room for the extra sizes past edge optima
        sweep_share = cfg.sweep_fraction if sweeping else 0.0
        levels = choose_levels((1 - sweep_share) * cfg.budget / reserve, cfg, self.eligible)
        left = cfg.budget - reserve * cfg.sizes_per_level * sum(levels) if sweeping else 0.0
        affordable = [c for c in cfg.allowed_flops if self.eligible(c) and len(self.combos()) * c <= left]
        return levels, max(affordable, default=None)

    def run(self) -> StudyResult:
        cfg = self.config
        self._previous = self.api.previous_runs()
        combos = self.combos()
        levels, sweep_level = self.plan()
        result = StudyResult(cfg, levels, sweep_level, cfg.learning_rates[-1], cfg.batch_sizes[0])
        result.flops_used = self.api.total_flops_used()
        self.log(f"levels {[f'{c:.0e}' for c in levels]}, sweep at {sweep_level}, budget {cfg.budget:.3g}")

        if sweep_level is not None:
            shape = self.shape_for(self.prior_n_opt(sweep_level))
            asked = self.ask_all(result, "sweep", [(shape, sweep_level, lr, bs) for lr, bs in combos])
            answered = [q for q in asked if q.loss is not None]
            if answered:
                best = min(answered, key=lambda q: q.loss)
                result.learning_rate, result.batch_size = best.spec.learning_rate, best.spec.batch_size

        chosen = (result.learning_rate, result.batch_size)
        for block in [[flops] for flops in levels] if cfg.adaptive_levels else [levels]:
            grid = {flops: self.level_shapes(self._center(result, flops)) for flops in block}
            wanted = [(s, c, *chosen) for c, shapes in grid.items() for s in shapes]
            if not cfg.adaptive_levels:  # the most steps first, so the longest runs do not start last
                wanted.sort(key=lambda w: -w[1] / self.parameters_of(w[0]))
            self.ask_all(result, "isoflops", wanted)
            self._bracket(result, grid)

        self._fit(result)
        result.warnings = self._warnings(result)
        for warning in result.warnings:
            self.log(f"warning: {warning}")
        return result

    def _warnings(self, result: StudyResult) -> list[str]:
        """Optima the study did not bracket: a fit through edge points measures the grid, not the law."""
        warnings = []
        rates = sorted(self.config.learning_rates)
        if result.sweep_level is not None and len(rates) > 1 and result.learning_rate in (rates[0], rates[-1]):
            side = "largest" if result.learning_rate == rates[-1] else "smallest"
            warnings.append(
                f"the sweep's best learning rate {result.learning_rate:g} is the {side} in the grid: the best rate "
                "may lie outside it, and every later run uses this one"
            )
        for flops in result.levels:
            level, best = _level_by_size(result, flops)
            if len(level) >= 2 and best in (0, len(level) - 1):
                side = "smallest" if best == 0 else "largest"
                fitted = result.fit is not None and any(o.compute_budget == flops for o in result.fit.optima)
                warnings.append(
                    f"at {flops:.0e} FLOPs the lowest loss is at the {side} size trained "
                    f"(N = {level[best].parameters:.3g}): this level's optimum is not bracketed"
                    + ("" if fitted else ", so the fits leave it out")
                )
        return warnings

    def _center(self, result: StudyResult, flops: float) -> float:
        optima = self._optima(result)
        if len(optima) >= 2:
            law = fit_power_law(np.array([c for c, _ in optima]), np.array([n for _, n in optima]))
            center = float(law(flops))
        else:
            center = self.prior_n_opt(flops)
        return min(max(center, 1.25 * self.smallest), self.largest)

    def _optima(self, result: StudyResult) -> list[tuple[float, float]]:
        """``(C, N_opt)`` of each finished level whose lowest loss is not at the edge of its sizes."""
        optima = []
        for flops in result.levels:
            level, best = _level_by_size(result, flops)
            if len(level) >= 3 and 0 < best < len(level) - 1:
                optima.append((flops, level[best].parameters))
        return optima

    def _bracket(self, result: StudyResult, grid: dict[float, list[ModelConfig]]) -> None:
        """Buy sizes beyond the edge while a level's lowest loss sits there (the levels' extra sizes at once)."""
        step = self.config.size_spread ** (1 / (self.config.sizes_per_level - 1))
        for _ in range(self.config.edge_extensions):
            wanted = []
            for flops, shapes in grid.items():
                level, best = _level_by_size(result, flops)
                if len(level) < 2 or 0 < best < len(level) - 1:
                    continue
                shape = self.shape_for(level[best].parameters * (step if best == len(level) - 1 else 1 / step))
                if shape not in shapes:
                    shapes.append(shape)
                    wanted.append((shape, flops, result.learning_rate, result.batch_size))
            if not wanted:
                return
            self.ask_all(result, "edge", wanted)

    def _fit(self, result: StudyResult) -> None:
        cfg = self.config
        runs = result.runs()
        sizes = {c: sum(r.compute_budget == c for r in runs) for c in {r.compute_budget for r in runs}}
        budgets = [c for c, n in sizes.items() if n >= 3]
        if len(budgets) < 2:
            self.log("fewer than two levels with three answered sizes: no fit")
            return
        bracketed = [c for c, _ in self._optima(result)]
        if len(bracketed) >= 2:
            budgets = bracketed
        runs = [r for r in runs if r.compute_budget in budgets]
        targets = [cfg.target_flops]
        fits = {}
        for method in OptimumMethod:
            try:
                fits[method] = fit_isoflops(runs, targets, method, cfg.bootstrap, cfg.seed)
            except ValueError as err:
                self.log(f"{method.value} optima not fitted: {err}")
        chosen = OptimumMethod(cfg.optimum_method)
        chosen = chosen if chosen in fits else OptimumMethod.LOWEST_LOSS
        result.fit = fits.pop(chosen)
        result.other_fits = list(fits.values())
        optima = result.fit.optima
        compute = np.array([o.compute_budget for o in optima])
        losses = np.array([o.loss for o in optima])
        if len(optima) >= 3:
            result.loss_law = fit_saturating_power_law(compute, losses)
        else:
            law = fit_power_law(compute, losses)
            result.loss_law = SaturatingPowerLaw(0.0, law.coefficient, -law.exponent)
        result.degenerate = degenerate_reasons(result.fit, (self.smallest, self.largest))
        for reason in result.degenerate:
            self.log(f"degenerate fit: {reason}")
        n_interval = result.fit.parameters.predictions[cfg.target_flops]
        shape = self.shape_for(n_interval.estimate)
        parameters = self.parameters_of(shape)
        result.prediction = Prediction(
            target_flops=cfg.target_flops,
            n_opt=n_interval.estimate,
            n_opt_low=n_interval.low,
            n_opt_high=n_interval.high,
            shape=shape,
            parameters=parameters,
            tokens=cfg.target_flops / (6 * parameters),
            learning_rate=result.learning_rate,
            batch_size=result.batch_size,
            loss=float(result.loss_law(cfg.target_flops)),
        )
