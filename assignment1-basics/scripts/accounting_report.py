"""Every number of the handout's transformer_accounting and adamwAccounting problems, from cs336_basics.accounting,
for GPT-2 small / medium / large / XL (and XL at a 16,384-token context). Run from the repository root:

    uv run python assignment1-basics/scripts/accounting_report.py

Writes accounting.json and table.md to --out_dir.
"""

from __future__ import annotations

from typing import Any

from cs336_basics.accounting_report import AccountingReportConfig, write_accounting_report
from cs336_basics.toolkit.cli import parse_config


def main(cfg: AccountingReportConfig) -> dict[str, Any]:
    return write_accounting_report(cfg)


if __name__ == "__main__":
    main(parse_config(AccountingReportConfig))
