"""Creating API keys and changing their FLOPs budgets in the service's store (what ``scripts/api_keys.py`` runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cs336_scaling.store import Store, checked_budget

DEFAULT_BUDGET = 2e18  # the handout's study budget
DEFAULT_DB = "runs/api.sqlite"  # the server's store unless told otherwise


@dataclass(frozen=True)
class ApiKeysConfig:
    """Create API keys and manage their FLOPs budgets in the service's SQLite store."""

    db: str = field(default=DEFAULT_DB, metadata={"help": "the service's SQLite store"})
    action: Literal["list", "create", "set_budget"] = field(
        default="list", metadata={"help": "list every key; create one; or set a key's budget"}
    )
    key: str | None = field(default=None, metadata={"help": "create: the new key (default: random); set_budget: which"})
    budget: float | None = field(
        default=None, metadata={"help": f"FLOPs, finite and >= 0 (create: default {DEFAULT_BUDGET:g})"}
    )

    def __post_init__(self):
        if self.budget is not None:
            checked_budget(self.budget)
        if self.action == "set_budget" and (self.key is None or self.budget is None):
            raise ValueError("set_budget needs --key and --budget")


def manage_keys(config: ApiKeysConfig) -> list[str]:
    """Do ``config.action``; the lines to show (the new key, or one line per key with its budget and spend)."""
    store = Store(config.db)
    if config.action == "create":
        budget = DEFAULT_BUDGET if config.budget is None else config.budget
        return [store.create_key(budget, config.key)]
    if config.action == "set_budget":
        store.set_budget(config.key, config.budget)
        return []
    return [f"{key}\tbudget={allowed:.3g}\tused={used:.3g}" for key, allowed, used in store.keys()]
