"""The course's prompt templates (``r1_zero``, ``question_only``, ``alpaca_sft``, ``zero_shot_system_prompt``).

They are data, found through the shared-data locator (``data/prompts/<name>.prompt``), with the
course repository as the public download fallback.
"""

from __future__ import annotations

from functools import cache

from cs336_basics.toolkit.data_paths import shared_path

PROMPT_URL = (
    "https://raw.githubusercontent.com/stanford-cs336/assignment5-alignment/main/cs336_alignment/prompts/{}.prompt"
)
PROMPT_NAMES = ("r1_zero", "question_only", "alpaca_sft", "zero_shot_system_prompt")


@cache
def load_prompt(name: str) -> str:
    """Template text, verbatim (placeholders such as ``{question}`` are filled with ``str.format``)."""
    if name not in PROMPT_NAMES:
        raise ValueError(f"unknown prompt {name!r}; expected one of {PROMPT_NAMES}")
    return shared_path(f"data/prompts/{name}.prompt", url=PROMPT_URL.format(name)).read_text()


def format_alpaca(instruction: str, response: str, template: str | None = None) -> str:
    """The Alpaca SFT document: instruction and response placed in the template."""
    return (template or load_prompt("alpaca_sft")).format(instruction=instruction, response=response)
