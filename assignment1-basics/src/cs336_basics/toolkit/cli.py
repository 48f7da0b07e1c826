"""Command-line flags generated from a config dataclass, so a script's options and its config never drift.

Every field becomes ``--field_name`` (also ``--field-name``) with the field's default; ``bool`` fields get
``--flag/--no-flag``; ``X | None`` fields accept ``none``; ``list[X]`` fields take zero or more values;
fields that are themselves dataclasses are flattened (their fields become top-level flags) and rebuilt on parse.
Help text comes from ``field(metadata={"help": ...})``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def _scalar_type(annotation: Any) -> tuple[type, bool]:
    """(base type, optional?) for ``int``, ``float``, ``str``, ``bool`` and their ``| None`` forms."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported config field type {annotation}")
        return args[0], True
    return annotation, False


def _parser_for(kind: type, optional: bool):
    def parse(text: str):
        if optional and text.lower() == "none":
            return None
        return kind(text)

    parse.__name__ = kind.__name__
    return parse


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, defaults: Any = None) -> None:
    """Add one flag per (flattened) field of dataclass ``cls``; ``defaults`` is an instance to take defaults from."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = getattr(defaults, f.name) if defaults is not None else _field_default(f)
        kind, optional = _scalar_type(hints[f.name])
        if dataclasses.is_dataclass(kind):
            add_dataclass_arguments(parser, kind, default)
            continue
        flags = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        help_text = f.metadata.get("help", "")
        if typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind)
            parser.add_argument(
                *flags, dest=f.name, nargs="*", type=item, default=default, help=f"{help_text} (default: {default})"
            )
        elif kind is bool:
            parser.add_argument(
                *flags,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=f"{help_text} (default: {default})",
            )
        elif kind in (int, float, str):
            required = default is dataclasses.MISSING
            parser.add_argument(
                *flags,
                dest=f.name,
                type=_parser_for(kind, optional),
                default=None if required else default,
                required=required,
                help=f"{help_text} (default: {default})" if not required else help_text,
            )
        else:
            raise TypeError(f"config field {cls.__name__}.{f.name} has unsupported type {kind}")


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def dataclass_from_namespace(cls: type[T], namespace: argparse.Namespace) -> T:
    """Rebuild ``cls`` (and nested config dataclasses) from parsed flags."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        kind, _ = _scalar_type(hints[f.name])
        values[f.name] = (
            dataclass_from_namespace(kind, namespace) if dataclasses.is_dataclass(kind) else getattr(namespace, f.name)
        )
    return cls(**values)


def _description(cls: type) -> str | None:
    """The class docstring, or None for the signature text ``dataclass`` puts there when there is none."""
    doc = cls.__doc__
    return None if doc is None or doc.startswith(f"{cls.__name__}(") else doc


def parse_config(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into an instance of dataclass ``cls``."""
    parser = argparse.ArgumentParser(description=description or _description(cls))
    add_dataclass_arguments(parser, cls)
    return dataclass_from_namespace(cls, parser.parse_args(argv))
