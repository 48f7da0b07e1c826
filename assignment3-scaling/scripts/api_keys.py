"""Create API keys and manage their FLOPs budgets in the service's SQLite store.

uv run python assignment3-scaling/scripts/api_keys.py --action create --budget 2e18
uv run python assignment3-scaling/scripts/api_keys.py --action set_budget --key KEY --budget 4e18
uv run python assignment3-scaling/scripts/api_keys.py --db runs/api.sqlite
"""

import sys

from cs336_basics.toolkit.cli import parse_config
from cs336_scaling.key_admin import ApiKeysConfig, manage_keys
from cs336_scaling.store import UnknownApiKey


def main(argv: list[str] | None = None) -> None:
    try:
        for line in manage_keys(parse_config(ApiKeysConfig, argv, description=__doc__)):
            print(line)
    except (ValueError, UnknownApiKey) as err:  # a hostile budget or an unknown key: one line, no traceback
        sys.exit(f"api_keys.py: error: {getattr(err, 'message', err)}")


if __name__ == "__main__":
    main()
