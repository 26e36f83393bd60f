"""Label Studio, Argilla v2 and Prodigy files: one module per tool, over one task model."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from agent.app.faults import regular_file
from agent.app.formats import argilla, labelstudio, prodigy
from agent.errors import InputError

FORMATS: dict[str, ModuleType] = {m.NAME: m for m in (labelstudio, argilla, prodigy)}


def format_module(name: str, path: Path) -> ModuleType:
    """The module of format `name`; InputError for an unknown name or a file suffix it never
    has (named before anything opens)."""
    module = FORMATS.get(name)
    if module is None:
        raise InputError(f"unknown format '{name}'; use one of {', '.join(FORMATS)}",
                         field="format")  # fmt: skip
    if path.suffix.lower() not in module.SUFFIXES:
        raise InputError(
            f"a {name} file ends in {' or '.join(module.SUFFIXES)}, not '{path.suffix}'",
            file=str(path),
        )
    return module


def check_source(name: str, path: Path) -> ModuleType:
    """Refuse, before the project opens, a file that cannot be read as format `name`."""
    module = format_module(name, path)
    regular_file(path)
    return module
