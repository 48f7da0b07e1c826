"""Plan and run a budgeted scaling-law study, fit it, predict the best model for the target, write a report.

Against a running API (ours, or the course's):

    uv run python assignment3-scaling/scripts/plan_study.py --api.url http://127.0.0.1:8000 --api.api_key KEY

In-process, with the predicted model trained at the target budget (package README: the GPU study's command):

    uv run python assignment3-scaling/scripts/plan_study.py --service.tokens tokens.bin --check.train \\
        --service.flops_scale 1e-3 --service.context_length 256
"""

from cs336_basics.toolkit.cli import parse_config
from cs336_scaling.study_config import StudyConfig


def main() -> None:
    config = parse_config(StudyConfig, description=__doc__)
    from cs336_scaling.study import run_study  # torch: after parsing, so --help answers at once

    run_study(config)


if __name__ == "__main__":
    main()
