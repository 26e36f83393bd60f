"""The `labelagent` command line: a thin front door over the store and the session.

Every expected failure (bad input, missing project, LLM failure after retries, and errors of
the file system, decoding and the database) ends as one line on stderr naming the path and
what to do, exit code 2, never a traceback: `friendly` is the one place that says so.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape

from agent.app.export import check_target
from agent.app.export import export as export_corpus
from agent.app.faults import describe, one_line
from agent.app.io import Columns, check_corpus_file, load_label_set, read_rows
from agent.app.multi_cli import (
    LabelSepOption,
    export_sets_line,
    multi_status_text,
    resolve_label_sep,
)
from agent.app.newproject import new_project
from agent.app.plan import DEFAULT_ROUNDS, Plan
from agent.config import DEFAULT_EMBEDDING_MODEL, ProjectConfig
from agent.errors import InputError, LabelAgentError
from agent.store.opening import create_store, open_store, store_url
from agent.store.postgres.url import parse_url

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Label text corpora with an LLM, a small classifier and a human.",
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

# readable=False: a path the user may not read gets the one-line error of `friendly`, not
# click's usage panel.
ProjectDir = Annotated[Path, typer.Argument(help="The project folder.", readable=False)]
FORMAT_HELP = (
    "label-studio (task JSON), argilla (v2 records JSON) or prodigy (JSONL): people's labels "
    "as annotations/responses, the machines' as predictions/suggestions with scores."
)


def friendly(func: F) -> F:
    """The CLI's one edge: the tool's own errors and those of the world outside (file system,
    decoding, database) become one line + exit 2; Ctrl-C exit 130; a bug one line + exit 1
    (LABELAGENT_DEBUG=1 shows its traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except LabelAgentError as exc:
            _fail(str(exc), 2)
        except KeyboardInterrupt:
            console.print("interrupted; everything accepted so far is saved")
            raise typer.Exit(130) from None
        except BrokenPipeError:  # `labelagent status --json | head`: main() exits 0
            raise
        except Exception as exc:
            _fail_outside(exc, kwargs.get("project"))

    return wrapper  # type: ignore[return-value]


def _fail(message: str, code: int) -> NoReturn:
    """Print `message` as one line (user data may hold line breaks, escapes or "[/x]", which
    must not read as markup) and exit with `code`."""
    console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False,
                  soft_wrap=True)  # fmt: skip
    raise typer.Exit(code) from None


def _fail_outside(exc: Exception, project: Path | None) -> NoReturn:
    """An OS, decoding or database error as one line naming the path; anything else is a bug."""
    line = describe(exc, project)
    if line is not None:
        _fail(line, 2)
    if os.environ.get("LABELAGENT_DEBUG"):
        raise exc
    _fail(
        f"internal error ({type(exc).__name__}: {exc}); please report it "
        "(LABELAGENT_DEBUG=1 shows where)",
        1,
    )


@app.command()
@friendly
def init(
    project: ProjectDir,
    labels: Annotated[
        Path, typer.Option(help="Label file: JSON, YAML or one label per line.", readable=False)
    ],
    embedding_model: Annotated[
        str, typer.Option(help="sentence-transformers model name or path, or 'hashing'.")
    ] = DEFAULT_EMBEDDING_MODEL,
    store: Annotated[
        str | None,
        typer.Option(
            help="Keep the project in PostgreSQL: postgresql://USER@HOST:PORT/DB?project=NAME "
            "(default: a SQLite file in the folder). The password comes from PGPASSWORD or "
            "~/.pgpass and is never saved."
        ),
    ] = None,
    multi_label: Annotated[
        bool,
        typer.Option("--multi-label", help="Each item takes a set of labels (task: multi_label)."),
    ] = False,
) -> None:
    """Create a project folder holding labelagent.json and its store (SQLite, or a pointer to
    a PostgreSQL project)."""
    label_set = load_label_set(labels)
    task = "multi_label" if multi_label else "single_label"
    config = ProjectConfig(embedding_model=embedding_model, task=task)
    if project.exists() and not project.is_dir():
        raise InputError("exists and is not a folder; choose another project path",
                         file=str(project))  # fmt: skip
    with new_project(project):
        with create_store(project, label_set, store):
            pass
        config.save(project)
    kind = " (multi-label)" if multi_label else ""
    console.print(f"created {project} with {len(label_set)} labels{kind}"
                  f"{_stored_in(project, store)}", markup=False, soft_wrap=True)  # fmt: skip


def _stored_in(project: Path, url: str | None) -> str:
    """' in URL' for a project kept in PostgreSQL, and a word on its password; '' for SQLite."""
    if url is None:
        return ""
    note = f" in {store_url(project)}"
    if parse_url(url, default_project=project.name).has_password:
        note += "; the password was not saved: give it by PGPASSWORD or ~/.pgpass"
    return note


@app.command("import")
@friendly
def import_(
    project: ProjectDir,
    file: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet file.", readable=False)],
    text_col: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    id_col: Annotated[str | None, typer.Option(help="Column holding a unique id.")] = None,
    label_col: Annotated[
        str | None, typer.Option(help="Column of existing labels, imported as seed labels.")
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help=FORMAT_HELP)] = None,
    label_sep: LabelSepOption = None,
) -> None:
    """Import items (one transaction: a bad row writes nothing), or a tool's file (--format)."""
    if fmt is not None:
        _import_tool_file(project, file, fmt, text_col, (id_col, label_col))
        return
    check_corpus_file(file)
    sep = resolve_label_sep(_load_config(project), label_sep)
    with open_store(project) as store:
        rows = read_rows(file, Columns(text_col, id_col, label_col, sep), store.label_set)
        result = store.add_items(rows, source_file=str(file))
    console.print(
        f"imported {result.added} items ({result.skipped} already present, "
        f"{result.seed_labels} seed labels) from {file}",
        markup=False,
    )


def _import_tool_file(
    project: Path, file: Path, fmt: str, text_col: str, columns: tuple[str | None, ...]
) -> None:
    """`import --format`: a Label Studio, Argilla or Prodigy file, with its provenance."""
    from agent.app.formats import check_source
    from agent.app.formats.apply import import_file

    if any(c is not None for c in columns):
        raise InputError("--id-col and --label-col are for corpus files; a --format file "
                         "names its ids and labels itself", field="format")  # fmt: skip
    check_source(fmt, file)
    multi = _load_config(project).task == "multi_label"
    with open_store(project) as store:
        done = import_file(store, file, fmt, text_col, multi_label=multi)
    marks = ", ".join(f"{n} {s}" for s, n in sorted(done.by_source.items())) or "no labels"
    console.print(
        f"imported {done.added} items ({done.skipped} already present; {marks}; "
        f"{done.known} marks already in the project) from {file}",
        markup=False,
    )


@app.command()
@friendly
def export(
    project: ProjectDir,
    out: Annotated[
        Path, typer.Argument(help="Output .csv, .jsonl or .parquet.", readable=False)
    ],
    fmt: Annotated[str | None, typer.Option("--format", help=FORMAT_HELP)] = None,
    label_sep: LabelSepOption = None,
) -> None:
    """Write every item in input order with its label and provenance (or a tool's file)."""
    check_target(out, fmt)
    config = _load_config(project)  # a broken config is refused before the project opens
    sep = resolve_label_sep(config, label_sep)
    if sep is not None:
        console.print(export_sets_line(project, config, out, (fmt, sep)), markup=False)
        return
    with open_store(project) as store:
        summary = export_corpus(store, out, fmt)
    console.print(
        f"wrote {summary['items']} items ({summary['labelled']} labelled) to {out}", markup=False
    )


@app.command()
@friendly
def status(
    project: ProjectDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Items, labels by source, queue, LLM spend and the estimated accuracy."""
    from agent.app.status import project_status

    config = _load_config(project)
    if config.task == "multi_label":
        typer.echo(multi_status_text(project, config, as_json))
        return
    with open_store(project) as store:
        info = project_status(store, config.routing, config.llm)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from agent.app.render import render_status

    render_status(Console(), info)


@app.command()
@friendly
def report(
    project: ProjectDir,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the PNGs and report.html (default: PROJECT/report).",
                     readable=False),
    ] = None,
) -> None:
    """PNG plots of accuracy, the LLM, audits and spend per round, on one HTML page (of a
    multi-label project: the exact-set estimate, F1 and each label's precision and recall)."""
    from agent.app.multi_report import write_set_report
    from agent.app.report import write_report

    config = _load_config(project)
    write = write_set_report if config.task == "multi_label" else write_report
    folder = out if out is not None else project / "report"
    with open_store(project) as store:
        page = write(store, config, folder, f"labelagent report: {project.name}")
    typer.echo(str(page))


LLMOption = Annotated[
    str | None,
    typer.Option("--llm", help="litellm model string, 'none', or simulated:/replay: specs."),
]
ApiBaseOption = Annotated[str | None, typer.Option(help="Base URL of the LLM endpoint.")]
# The plan of a run: `run` and `estimate` take the same flags (see agent.app.plan).
RoundsOption = Annotated[int, typer.Option(min=0, help="Rounds in this run.")]
BatchSizeOption = Annotated[int | None, typer.Option(min=1, help="Items per round.")]
HumanBudgetOption = Annotated[int | None, typer.Option(min=0, help="Human labels, in all.")]
LLMBudgetOption = Annotated[int | None, typer.Option(min=0, help="Paid LLM calls, in all.")]


class EngineChoice(str, Enum):
    """Where `run` does the pool-wide work (agent/batch/)."""

    local = "local"
    ray = "ray"


TargetOption = Annotated[
    float | None,
    typer.Option(min=0.0, max=1.0, help="Stop at this estimated accuracy (multi-label: the "
                 "exact-set accuracy routing certifies for the LLM-answered items)."),
]


@app.command()
@friendly
def run(
    project: ProjectDir,
    llm: LLMOption = None,
    api_base: ApiBaseOption = None,
    rounds: RoundsOption = DEFAULT_ROUNDS,
    batch_size: BatchSizeOption = None,
    human_budget: HumanBudgetOption = None,
    llm_budget: LLMBudgetOption = None,
    target_accuracy: TargetOption = None,
    oracle_file: Annotated[
        Path | None,
        typer.Option(
            help="CSV of id,label or text,label that answers the review queue "
            "(simulation/demo; the gold of --llm simulated:...).",
            readable=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Take the project over from a run that holds it.")
    ] = False,
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="Start a new run instead of finishing an interrupted one."),
    ] = False,
    engine: Annotated[
        EngineChoice | None,
        typer.Option(
            help="Where embedding and pool scoring run: here (local) or on Ray Data (ray; "
            "pip install 'labelagent[ray]'). Default: the project's config (local).",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to use ('auto', 'ray://host:port'); implies --engine ray. "
            "Default: start a local Ray instance for the run.",
        ),
    ] = None,
    label_sep: LabelSepOption = None,
) -> None:
    """Rounds of select -> LLM pre-label -> route -> retrain; leaves a review queue.

    One run at a time per project; a rerun after a kill finishes the interrupted run."""
    from agent.app.commands import RunOptions, run_project

    options = RunOptions(
        llm=llm,
        api_base=api_base,
        plan=Plan(rounds, batch_size, human_budget, llm_budget, target_accuracy),
        oracle_file=oracle_file,
        force=force,
        fresh=fresh,
        engine=engine.value if engine is not None else None,
        ray_address=ray_address,
    )
    config = _load_config(project)
    sep = resolve_label_sep(config, label_sep)
    if sep is not None:
        from agent.app.multi_run import run_multi_project

        run_multi_project(project, config, options, sep, console)
        return
    run_project(project, config, options, console)


@app.command()
@friendly
def review(
    project: ProjectDir,
    operator: Annotated[str, typer.Option(help="Your name, stored with every decision.")] = (
        os.environ.get("USER", "operator")
    ),
) -> None:
    """Open the review queue in a terminal UI, most valuable item first."""
    from agent.app.commands import review_project

    config = _load_config(project)
    if config.task == "multi_label":
        from agent.app.multi_review import review_sets

        review_sets(project, config, operator)
        return
    review_project(config=config, project=project, operator=operator)


@app.command()
@friendly
def estimate(
    project: ProjectDir,
    llm: LLMOption = None,
    api_base: ApiBaseOption = None,
    rounds: RoundsOption = DEFAULT_ROUNDS,
    batch_size: BatchSizeOption = None,
    human_budget: HumanBudgetOption = None,
    llm_budget: LLMBudgetOption = None,
    target_accuracy: TargetOption = None,
    items: Annotated[
        int | None, typer.Option(min=0, help="Price this many items instead of the plan's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """LLM calls, tokens and cost of the run these flags plan (`run`'s flags), before paying:
    an upper bound, since rounds ask fewer items once audits, the target or the pool say so."""
    from agent.app.estimate import estimate_project

    plan = Plan(rounds, batch_size, human_budget, llm_budget, target_accuracy)
    info = estimate_project(project, _load_config(project), (llm, api_base), plan, items)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(info["summary"])
    if info.get("endpoint"):
        typer.echo(info["endpoint"])


def _load_config(project: Path) -> ProjectConfig:
    """The project's config, read before its database opens (a refusal leaves it untouched)."""
    if not project.is_dir():
        what = "no such folder" if not project.exists() else "not a folder"
        raise InputError(f"not a labelagent project ({what}); run 'labelagent init'",
                         file=str(project))  # fmt: skip
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
