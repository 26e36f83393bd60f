"""Glue behind `labelagent run`, `review` and `estimate`: build the parts, show progress.

Kept apart from `cli.py` so that the CLI module stays a list of commands and imports nothing
heavy (torch, litellm) until a command needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agent.app.faults import regular_file
from agent.app.plan import Plan
from agent.app.preflight import (
    check_llm_choice,
    check_replay,
    load_oracle_answers,
    refuse_empty,
)
from agent.app.render import format_estimate
from agent.app.status import project_status
from agent.config import ProjectConfig
from agent.errors import InputError
from agent.llm.protocol import ChatBackend
from agent.loop.job import JobLimits, JobReport, Oracle, run_job
from agent.loop.llm_setup import build_backend, build_labeller
from agent.loop.runlock import RunLock, default_holder
from agent.loop.session import LabelingSession
from agent.types import Item, QueueEntry


@dataclass(frozen=True)
class RunOptions:
    llm: str | None = None
    api_base: str | None = None
    plan: Plan = field(default_factory=Plan)
    oracle_file: Path | None = None
    force: bool = False  # take the run lock over from a run that still holds it
    fresh: bool = False  # start a new run even where the last one was interrupted
    engine: str | None = None  # where the pool-wide work runs (None: the project's config)
    ray_address: str | None = None  # a Ray cluster ("auto", "ray://host:port"); implies ray


def resolve_llm(config: ProjectConfig, llm: str | None, api_base: str | None) -> ProjectConfig:
    """The config with the command line's LLM choice applied ('none' switches the LLM off)."""
    model = llm if llm is not None else config.llm.model
    if model is not None and model.strip().lower() == "none":
        model = None
    update: dict[str, Any] = {"model": model}
    if api_base is not None:
        update["api_base"] = api_base
    return config.model_copy(update={"llm": config.llm.model_copy(update=update)})


def resolve_engine(
    config: ProjectConfig, engine: str | None, ray_address: str | None
) -> ProjectConfig:
    """The config with the command line's engine applied: --ray-address alone means ray;
    with --engine local it is refused (one line), since it would be ignored."""
    if ray_address is not None and engine == "local":
        raise InputError("--ray-address is for --engine ray; drop one of them", field="engine")
    chosen = engine or ("ray" if ray_address is not None else config.engine)
    address = ray_address if ray_address is not None else config.ray_address
    if chosen == "local":
        address = None  # the project's saved address serves its ray runs only
    return config.model_copy(update={"engine": chosen, "ray_address": address})


def make_labeller(session: LabelingSession) -> Any:
    """The LLM labeller for the session's configured model, or None without one (built as
    the library builds it: `agent.loop.llm_setup`)."""
    return build_labeller(session)


def make_session_backend(
    session: LabelingSession, gold_by_id: dict[str, str] | None
) -> ChatBackend | None:
    """The configured LLM; simulated annotators also get gold (by text) and label vectors, a
    replay file keyed by id the project's texts (one builder for the CLI and the library:
    `agent.loop.llm_setup`)."""
    return build_backend(session, gold_by_id)


def endpoint_line(
    backend: ChatBackend | None, store: Any, *, send_probe: bool = True
) -> str | None:
    """What the endpoint takes (remembered per project; probed once by `estimate`, learnt from
    the first calls by `run`), as one line."""
    from agent.llm.capabilities import ensure

    return ensure(backend, store, send_probe=send_probe) if backend is not None else None


def settled_line(backend: ChatBackend | None, store: Any) -> str | None:
    """What a run's calls taught about its endpoint, remembered for the next run."""
    from agent.llm.capabilities import settle

    return settle(backend, store) if backend is not None else None


def load_oracle(path: Path, store: Any) -> tuple[Oracle, dict[str, str]]:
    """An oracle answering from a CSV of id,label or text,label (`preflight`), and its
    answers by project id."""
    answers = load_oracle_answers(path, store)

    def oracle(item: Item, entry: QueueEntry) -> str | None:
        return answers.get(item.id)

    return oracle, answers


def run_project(
    project: Path, config: ProjectConfig, options: RunOptions, console: Console
) -> None:
    """The batch job on a project, holding its run lock from before the first line it prints
    (a second run is refused with one line) until the summary; the session closes always.
    What would fail later (no items, no gold for a simulated LLM, answer files that match
    too few items) is refused before anything is embedded."""
    config = resolve_llm(config, options.llm, options.api_base)
    config = resolve_engine(config, options.engine, options.ray_address)
    check_llm_choice(config.llm.model, options.oracle_file)
    if options.oracle_file is not None:
        regular_file(options.oracle_file)  # before the project opens
    session = LabelingSession.open(project, config=config, progress=True)
    holder = default_holder()
    try:
        refuse_empty(session.store, project)
        oracle = None  # read before the lock: a bad oracle file leaves the project untouched
        if options.oracle_file is not None:
            oracle = load_oracle(options.oracle_file, session.store)
        check_replay(config.llm.model, session.store)
        with RunLock(session.store, holder, force=options.force):
            _run_locked(session, project, options, console, (holder, oracle))
    finally:
        session.close()


def _run_locked(
    session: LabelingSession,
    project: Path,
    options: RunOptions,
    console: Console,
    held: tuple[str, tuple[Oracle, dict[str, str]] | None],
) -> None:
    """Everything `run` does once it holds the project: header, job, summary; `held` is
    (lock holder, (oracle, gold) or None)."""
    config = session.config
    holder, answers = held
    oracle, gold = answers if answers is not None else (None, None)
    mode = f"LLM {config.llm.model}" if config.llm.model else "no LLM: classifier + zero-shot only"
    console.print(
        f"[bold]labelagent run[/] on {project}: {mode}"
        + (f"; simulated operator answers from {options.oracle_file}" if oracle else "")
    )
    plan = options.plan
    limits = JobLimits(
        plan.rounds,
        plan.batch_size or config.batch_size,
        plan.human_budget,
        plan.llm_budget,
        plan.target_accuracy,
    )
    _ = session.pool  # embed (with its own progress bar) before the rounds' bar starts
    session.backend = make_session_backend(session, gold)
    endpoint = endpoint_line(session.backend, session.store, send_probe=False)
    if endpoint is not None:
        console.print(endpoint, markup=False, soft_wrap=True)
    labeller = make_labeller(session)
    if labeller is not None and not labeller.rationale and config.llm.rationale == "auto":
        console.print(
            "answers without a rationale: the endpoint is on this machine, where each written "
            "token costs time (llm.rationale: always asks for one)",
            markup=False, soft_wrap=True,
        )
    report = _run_with_progress(
        session, limits, labeller, oracle, console, (holder, options.fresh)
    )
    learnt = settled_line(session.backend, session.store)
    if learnt is not None:
        console.print(learnt, markup=False, soft_wrap=True)
    _print_summary(
        console, report, project_status(session.store, config.routing, config.llm), session
    )
    if labeller is not None:
        console.print(f"LLM in this run: {_spend(labeller.stats.as_dict())}", markup=False)


def _spend(stats: dict[str, Any]) -> str:
    tokens = stats["prompt_tokens"] + stats["completion_tokens"]
    return (
        f"{stats['calls']} paid calls, {stats['cache_hits']} cache hits, {tokens:,} tokens, "
        f"${stats['cost_usd']:.4f}, {stats['abstains']} abstains, {stats['failures']} failures"
    )


def _run_with_progress(
    session: LabelingSession,
    limits: JobLimits,
    labeller: Any,
    oracle: Oracle | None,
    console: Console,
    run: tuple[str, bool],
) -> JobReport:
    """The job under a progress bar; `run` is (lock holder, fresh)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("rounds", total=limits.rounds, info="")

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "round":
                info = (
                    f"selected {data['selected']}, auto {data['auto_accepted']}, "
                    f"queued {data['queued']}, LLM calls {data['llm_calls']}"
                ) + (f"; {data['llm_note']}" if data.get("llm_note") else "")
                progress.update(task, advance=1, info=info)
            elif kind == "resume":
                progress.update(task, completed=data["rounds_done"])
                console.print(
                    f"finishing the interrupted run: {data['rounds_done']} of {data['rounds']} "
                    "rounds were done (--fresh starts a new run)",
                    soft_wrap=True,
                )
            else:
                progress.update(task, info=f"final pass: classifier labelled {data['labelled']}")

        return run_job(
            session, limits, labeller, oracle, on_event, holder=run[0], fresh=run[1]
        )


def _print_summary(
    console: Console, report: JobReport, info: dict[str, Any], session: LabelingSession
) -> None:
    from agent.app.render import render_status

    console.print(f"stopped: {report.stop_reason}")
    render_status(console, info)
    if session.backend is None:
        console.print("no LLM was used (set --llm or llm.model to add one)")
    console.print(f"estimated corpus accuracy: {format_estimate(info['estimated_accuracy'])}")


def review_project(
    project: Path, config: ProjectConfig, operator: str, auto_pilot: Any = None,
    console: Console | None = None,
) -> None:
    """Run the review app, then print what this session saved and what is left.

    `auto_pilot` (an async function of a Textual Pilot) drives the app headless instead of
    the terminal: scripted demos and tests press the keys."""
    from agent.tui.app import ReviewApp
    from agent.tui.summary import summary_line

    session = LabelingSession.open(project, config=config)
    try:
        app = ReviewApp(session.store, config, operator, services=session)
        app.run(headless=auto_pilot is not None, auto_pilot=auto_pilot)
        app.controller.close()  # waits for every write; idempotent after the app's own close
        line = summary_line(app.controller.summary())
    finally:
        session.close()
    (console or Console()).print(line, markup=False, highlight=False, soft_wrap=True)
