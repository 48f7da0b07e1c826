"""Command-line flags generated from a config dataclass, so a script's options and its config never drift.

``parse_config(Config)`` is the one entry point every script uses. Each field becomes a flag:

- spelling: ``--field_name`` and ``--field-name`` are both accepted, for every flag in every package;
- nesting: a field that is itself a dataclass gets dotted flags, ``--model.d_model`` (or ``--model.d-model``),
  and is rebuilt on parse; nesting goes as deep as the configs do;
- types: ``int``, ``float``, ``str``, ``pathlib.Path``, a ``Literal`` of strings or an ``Enum`` (the values are
  the choices); ``bool`` gets ``--flag`` / ``--no-flag`` (dotted: ``--no-model.flag``); ``X | None`` also accepts
  ``none``; ``list[X]`` takes zero or more values (``--tags a b``);
- help: ``--help`` shows each option's line of text, ``field(metadata={"help": ...})``, or its type when the field
  has none, followed by its default (``(default: 0.003)``); the description is the config's docstring;
- errors: an unknown flag (with the closest known one), a bad value (a choice lists the valid ones), a missing
  required flag or a value the config's own checks (``__post_init__``) refuse stops with the usage and a one-line
  message (exit status 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import inspect
import os
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_SCALARS = (int, float, str, Path)


def parse_config(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into an instance of dataclass ``cls``."""
    parser = config_parser(cls, description)
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(_unknown_message(parser, unknown))
    try:
        return dataclass_from_namespace(cls, namespace)
    except ValueError as error:  # the config's own checks: a usage error like any other bad value, not a traceback
        parser.error(str(error))


def config_parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    """The parser ``parse_config`` uses: one flag per field of ``cls``; its ``parse_args`` checks flags and their
    types without building the config (so without the config's own checks on the values)."""
    parser = argparse.ArgumentParser(
        description=description or _description(cls),
        allow_abbrev=False,  # a prefix of one flag must not silently set another
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_arguments(parser, cls)
    return parser


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, defaults: Any = None, prefix: str = "", target: Any = None
) -> None:
    """Add one flag per field of dataclass ``cls`` (dotted ``prefix.`` flags for nested ones, each nested config in
    its own help section) to ``target`` (default: ``parser``); ``defaults`` is an instance to take defaults from."""
    target = target or parser
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = getattr(defaults, f.name) if defaults is not None else _field_default(f)
        kind, optional = _unwrap_optional(hints[f.name])
        name = prefix + f.name
        if dataclasses.is_dataclass(kind):
            if optional or default is dataclasses.MISSING:
                raise TypeError(f"nested config {cls.__name__}.{f.name} needs a default and cannot be optional")
            summary = (_description(kind) or "").split("\n\n")[0]  # a section's first paragraph
            group = parser.add_argument_group(f"--{name}.*", summary or None)
            add_dataclass_arguments(parser, kind, default, prefix=f"{name}.", target=group)
            continue
        _add_field(target, cls, f, name, kind, optional, default)


def dataclass_from_namespace(cls: type[T], namespace: argparse.Namespace, prefix: str = "") -> T:
    """Rebuild ``cls`` (and its nested config dataclasses) from parsed flags."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        kind, _ = _unwrap_optional(hints[f.name])
        name = prefix + f.name
        if dataclasses.is_dataclass(kind):
            values[f.name] = dataclass_from_namespace(kind, namespace, prefix=f"{name}.")
        else:
            values[f.name] = getattr(namespace, name)
    return cls(**values)


def dotted_fields(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    """Every field that becomes a flag, with its dotted name (``model.d_model``): nested configs are flattened, as
    ``add_dataclass_arguments`` flattens them, so a test can check each flag's help without parsing ``--help``."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind, _ = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(kind):
            out += dotted_fields(kind, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, f))
    return out


def flag_names(cls: type) -> list[str]:
    """Every flag of config ``cls`` in its snake spelling, nested configs as dotted flags (``--model.d_model``)."""
    return [f"--{name}" for name, _ in dotted_fields(cls)]


def _add_field(parser, cls: type, f: dataclasses.Field, name: str, kind: Any, optional: bool, default: Any) -> None:
    flags = _spellings(name)
    required = default is dataclasses.MISSING
    text = f.metadata.get("help") or _type_name(kind, optional)
    help_text = f"{text} (required)" if required else f"{text} (default: {_show(default)})"
    options: dict[str, Any] = {"dest": name, "help": help_text.replace("%", "%%")}
    if not required:
        options["default"] = default
    if kind is bool:
        parser.add_argument(*flags, action=argparse.BooleanOptionalAction, required=required, **options)
        return
    item = typing.get_args(kind)[0] if typing.get_origin(kind) is list else kind
    if item is not kind:
        options["nargs"] = "*"
    converter, choices = _converter(item, optional and item is kind, cls, f)
    metavar = "{" + ",".join(choices) + "}" if choices else _type_name(item, False).upper()
    parser.add_argument(*flags, type=converter, metavar=metavar, required=required, **options)


def _converter(kind: Any, optional: bool, cls: type, f: dataclasses.Field) -> tuple[Any, list[str] | None]:
    """A string -> value function (argparse names it in ``invalid <name> value``; a bad choice's message lists the
    accepted strings) and the accepted strings."""
    if typing.get_origin(kind) is typing.Literal:
        values = typing.get_args(kind)
        if not all(isinstance(v, str) for v in values):
            raise TypeError(f"config field {cls.__name__}.{f.name}: only Literal strings are supported")
        lookup = {v: v for v in values}
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        lookup = {str(member.value): member for member in kind}
    elif kind in _SCALARS:
        lookup = None
    else:
        raise TypeError(f"config field {cls.__name__}.{f.name} has unsupported type {kind}")
    choices = None if lookup is None else list(lookup) + (["none"] if optional else [])

    def convert(text: str):
        if optional and text.lower() == "none":
            return None
        if lookup is None:
            return kind(text)
        if text not in lookup:
            raise argparse.ArgumentTypeError(f"invalid choice value: {text!r} (choose from {', '.join(choices)})")
        return lookup[text]

    convert.__name__ = kind.__name__ if lookup is None else "choice"
    return convert, choices


def _spellings(name: str) -> list[str]:
    """``--a_b.c_d`` and ``--a-b.c-d``."""
    snake = f"--{name}"
    kebab = f"--{name.replace('_', '-')}"
    return [snake] if kebab == snake else [snake, kebab]


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """(the type, whether ``None`` is allowed) for ``X`` and ``X | None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported config field type {annotation}")
        return args[0], True
    return annotation, False


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _type_name(kind: Any, optional: bool) -> str:
    if typing.get_origin(kind) is list:
        return f"list of {_type_name(typing.get_args(kind)[0], False)}"
    if typing.get_origin(kind) is typing.Literal:
        name = "choice"
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        name = "choice"
    else:
        name = getattr(kind, "__name__", str(kind)).lower()
    return f"{name} or none" if optional else name


def _show(value: Any) -> str:
    """A default as the user would type it: ``none``, ``a b`` for lists, an enum's value."""
    if value is None:
        return "none"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list | tuple):
        return " ".join(_show(v) for v in value) if value else "(empty)"
    return str(value)


def _description(cls: type) -> str | None:
    """The class docstring, or None for the signature text ``dataclass`` puts there when there is none."""
    doc = cls.__doc__
    return None if doc is None or doc.startswith(f"{cls.__name__}(") else inspect.cleandoc(doc)


def _unknown_message(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """``unknown flag --lr (did you mean --learning_rate?)``; a stray value is named as such."""
    known = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
    parts = []
    for item in unknown:
        flag = item.split("=", 1)[0]
        if not flag.startswith("-"):
            parts.append(f"unexpected value {item!r}")
            continue
        close = _closest_flag(flag, known)
        parts.append(f"unknown flag {flag}" + (f" (did you mean {close}?)" if close else ""))
    return "; ".join(parts)


def _closest_flag(flag: str, known: list[str]) -> str | None:
    """The known flag most like ``flag``: names compared without dashes, a shared beginning weighing as much as the
    overall likeness (``--output`` is ``--out_dir``, not ``--inputs``); None when nothing is close."""
    name = flag.lstrip("-")

    def prefix_share(other: str) -> float:
        return len(os.path.commonprefix([name, other])) / max(len(name), len(other))

    scored = []
    for candidate in known:
        other = candidate.lstrip("-")
        ratio = difflib.SequenceMatcher(None, name, other).ratio()
        shared = len(os.path.commonprefix([name, other]))
        if ratio >= 0.6 or shared >= min(3, len(other)):
            scored.append((ratio + prefix_share(other), candidate))
    return max(scored)[1] if scored else None
