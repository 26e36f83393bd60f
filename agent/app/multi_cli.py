"""The multi-label forms of the CLI's commands (issue 21), kept out of `cli.py`: the
--label-sep option, and `export` (corpus or a tool's file) and `status` of a multi-label
project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agent.config import ProjectConfig
from agent.errors import InputError
from agent.store.opening import open_store

LabelSepOption = Annotated[
    str | None,
    typer.Option(help="Multi-label projects: the separator of label names in a CSV cell "
                 "(default '|'); JSONL and Parquet hold lists."),
]


def resolve_label_sep(config: ProjectConfig, given: str | None) -> str | None:
    """The label-set separator of a multi-label project (None: one label per row); refused
    for a single-label project, where it would be ignored."""
    from agent.app.labelcells import DEFAULT_SEP, check_sep

    if config.task != "multi_label":
        if given is not None:
            raise InputError("--label-sep is for multi-label projects (init --multi-label)",
                             field="label-sep")  # fmt: skip
        return None
    return check_sep(given if given is not None else DEFAULT_SEP)


def export_sets_line(
    project: Path, config: ProjectConfig, out: Path, how: tuple[str | None, str]
) -> str:
    """`export` of a multi-label project (sets as lists, or joined by the separator in CSV; or
    a tool's file, `how` = (format, separator)), naming the tool's settings file if it has one."""
    from agent.app.multi_export import export_sets

    with open_store(project) as store:
        summary = export_sets(store, config, out, how)
    line = f"wrote {summary['items']} items ({summary['labelled']} labelled) to {out}"
    if summary["setup_file"]:
        line += f"; the tool's multi-label settings: {summary['setup_file']}"
    return line


def multi_status_text(project: Path, config: ProjectConfig, as_json: bool) -> str:
    """What `status` prints for a multi-label project (JSON with --json)."""
    from agent.app.multi_export import multi_status, render_multi_status

    with open_store(project) as store:
        info = multi_status(store, config)
    if as_json:
        return json.dumps(info, indent=2)
    return "\n".join(render_multi_status(info))
