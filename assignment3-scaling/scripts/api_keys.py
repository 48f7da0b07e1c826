"""Create API keys and manage their FLOPs budgets in the service's SQLite store.

uv run python assignment3-scaling/scripts/api_keys.py --db api.sqlite create --budget 2e18
uv run python assignment3-scaling/scripts/api_keys.py --db api.sqlite set-budget KEY 4e18
uv run python assignment3-scaling/scripts/api_keys.py --db api.sqlite list
"""

from __future__ import annotations

import argparse

from cs336_scaling.store import Store, UnknownApiKey, checked_budget


def budget(text: str) -> float:
    """A budget argument: a finite number of FLOPs >= 0 (``-5``, ``inf`` and ``nan`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    try:
        return checked_budget(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="register a key (random unless --key) with a budget")
    create.add_argument("--budget", type=budget, default=2e18)
    create.add_argument("--key", default=None)
    set_budget = commands.add_parser("set-budget", help="change a key's budget")
    set_budget.add_argument("key")
    set_budget.add_argument("budget", type=budget)
    commands.add_parser("list", help="every key with its budget and spend")
    args = parser.parse_args(argv)

    store = Store(args.db)
    try:
        if args.command == "create":
            print(store.create_key(args.budget, args.key))
        elif args.command == "set-budget":
            store.set_budget(args.key, args.budget)
    except (ValueError, UnknownApiKey) as err:
        parser.exit(1, f"{parser.prog}: error: {getattr(err, 'message', err)}\n")
    if args.command == "list":
        for key, allowed, used in store.keys():
            print(f"{key}\tbudget={allowed:.3g}\tused={used:.3g}")


if __name__ == "__main__":
    main()
