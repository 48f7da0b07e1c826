"""Every script and benchmark answers ``--help`` from its config dataclass without loading torch or matplotlib."""

from pathlib import Path

import pytest
from cs336_basics.toolkit.entry_points import help_probe

PACKAGE = Path(__file__).parents[1]
ENTRY_POINTS = sorted([*PACKAGE.glob("scripts/*.py"), *PACKAGE.glob("benchmarks/*.py")])
HEAVY = ("torch", "matplotlib", "scipy", "fastapi")


@pytest.mark.parametrize("script", ENTRY_POINTS, ids=lambda path: path.name)
def test_help_lists_defaults_without_heavy_imports(script):
    help_text, loaded = help_probe(script, HEAVY)
    assert "(default: " in help_text
    assert loaded == []


def test_the_gpu_study_command_parses_into_a_study_config():
    """The README's GPU study command in dotted flags: nested settings land in their parts of the config."""
    from cs336_basics.toolkit.cli import parse_config
    from cs336_scaling.study_config import StudyConfig

    argv = (
        "--service.tokens english_bytes/tokens.bin --out_dir study --service.workers_per_device 4 "
        "--service.processes --service.compile --service.flops_scale 2.5e-3 --service.context_length 256 "
        "--service.batch_divisor 2 --check.train --check.neighbours 2 4 --check.max_steps 20000 --plan.min_levels 3 "
        "--plan.max_levels 3 --plan.size_spread 8 --plan.prior_tokens_per_parameter 80 --plan.aspect_ratio 16 "
        "--plan.aspect_weight 0.3 --plan.optimum_method joint --plan.learning_rates 1e-3 --plan.batch_sizes 128 "
        "--no-plan.adaptive_levels --plan.target_flops 1e18"
    ).split()
    config = parse_config(StudyConfig, argv)
    assert config.in_process and config.out_dir == "study" and config.api.url is None
    assert (config.service.workers_per_device, config.service.processes, config.service.flops_scale) == (
        4,
        True,
        2.5e-3,
    )
    assert config.check.train and config.check.neighbours == [2.0, 4.0] and config.check.max_steps == 20000
    assert config.plan.optimum_method == "joint" and not config.plan.adaptive_levels
    assert (
        config.plan.learning_rates == [1e-3] and config.plan.batch_sizes == [128] and config.plan.target_flops == 1e18
    )
