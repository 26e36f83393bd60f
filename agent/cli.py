"""The `labelagent` command line: a thin front door over the store and the session.

Every expected failure (bad input, missing project, LLM failure after retries) ends as one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from agent.config import DEFAULT_EMBEDDING_MODEL, ProjectConfig
from agent.errors import InputError, LabelAgentError
from agent.export import export as export_corpus
from agent.io import Columns, load_label_set, read_rows
from agent.status import project_status
from agent.store import Store

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Label text corpora with an LLM, a small classifier and a human.",
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

ProjectDir = Annotated[Path, typer.Argument(help="The project folder.")]


def friendly(func: F) -> F:
    """Turn the tool's own errors into one line + exit 2; Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LabelAgentError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("interrupted; everything accepted so far is saved")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@friendly
def init(
    project: ProjectDir,
    labels: Annotated[Path, typer.Option(help="Label file: JSON, YAML or one label per line.")],
    embedding_model: Annotated[
        str, typer.Option(help="sentence-transformers model name or path, or 'hashing'.")
    ] = DEFAULT_EMBEDDING_MODEL,
) -> None:
    """Create a project folder holding one SQLite store and labelagent.json."""
    label_set = load_label_set(labels)
    with Store.create(project, label_set):
        pass
    ProjectConfig(embedding_model=embedding_model).save(project)
    console.print(f"created {project} with {len(label_set)} labels")


@app.command("import")
@friendly
def import_(
    project: ProjectDir,
    file: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet file.")],
    text_col: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    id_col: Annotated[str | None, typer.Option(help="Column holding a unique id.")] = None,
    label_col: Annotated[
        str | None, typer.Option(help="Column of existing labels, imported as seed labels.")
    ] = None,
) -> None:
    """Import items (one transaction: a bad row writes nothing)."""
    with Store.open(project) as store:
        rows = read_rows(file, Columns(text_col, id_col, label_col), store.label_set)
        result = store.add_items(rows, source_file=str(file))
    console.print(
        f"imported {result.added} items ({result.skipped} already present, "
        f"{result.seed_labels} seed labels) from {file}"
    )


@app.command()
@friendly
def export(
    project: ProjectDir,
    out: Annotated[Path, typer.Argument(help="Output .csv, .jsonl or .parquet.")],
) -> None:
    """Write every item in input order with its label and provenance."""
    with Store.open(project) as store:
        summary = export_corpus(store, out)
    console.print(f"wrote {summary['items']} items ({summary['labelled']} labelled) to {out}")


@app.command()
@friendly
def status(
    project: ProjectDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Items, labels by source, queue, LLM spend and the estimated accuracy."""
    with Store.open(project) as store:
        info = project_status(store)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from agent.render import render_status

    render_status(Console(), info)


def _load_config(project: Path) -> ProjectConfig:
    if not project.is_dir():
        raise InputError("no such project folder", file=str(project))
    return ProjectConfig.load(project)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        app()
    except BrokenPipeError:  # `labelagent status --json | head`
        sys.exit(0)


if __name__ == "__main__":
    main()
