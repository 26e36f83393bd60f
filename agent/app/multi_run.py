"""Glue behind `labelagent run` on a multi-label project: the LLM (a live model through the
ChatBackend protocol, or the simulated multi-label LLM answering from the oracle file's gold
sets), the simulated operator, the run lock, the job and its summary."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from agent.app.commands import RunOptions, resolve_llm
from agent.app.faults import regular_file
from agent.app.multi_export import format_set_estimate, multi_status
from agent.app.preflight import check_llm_choice, refuse_empty
from agent.app.setfiles import load_set_answers, replay_sets
from agent.config import ProjectConfig
from agent.errors import InputError
from agent.llm.protocol import ChatBackend
from agent.loop.multi_job import MultiLimits, SetOracle, run_multi_job
from agent.loop.multi_plan import budget_note
from agent.loop.resume import INTERRUPTED_NOTE
from agent.loop.runlock import RunLock, default_holder
from agent.loop.session import LabelingSession
from agent.types import Item, decode_label_set


def multi_backend(
    session: LabelingSession, gold_by_id: dict[str, str] | None, sep: str = "|"
) -> ChatBackend | None:
    """The configured LLM; `simulated:acc=..` becomes the simulated multi-label LLM over the
    gold sets (by text) and the label vectors (for confusable neighbours)."""
    model = session.config.llm.model
    if model is None:
        return None
    if model.startswith("replay:"):
        from agent.llm.multi_sim import ReplayMultiLLM

        answers = replay_sets(Path(model.partition(":")[2]), session.store, sep)
        return ReplayMultiLLM(session.label_set, answers, model)
    if not model.startswith("simulated:"):
        from agent.llm.factory import make_backend

        return make_backend(session.config.llm)
    from agent.llm.annotators import annotator_kind, parse_spec_params
    from agent.llm.multi_sim import SimulatedMultiLLM

    params = parse_spec_params(model, annotator_kind(model)[1])
    texts = {it.id: it.text for batch in session.store.iter_items() for it in batch}
    gold = {texts[i]: decode_label_set(s) or () for i, s in (gold_by_id or {}).items()}
    return SimulatedMultiLLM(session.label_set, gold, params["acc"],
                             params.get("abstain", 0.03), int(params.get("seed", 0)),
                             session.pool.label_vectors, model=model)  # fmt: skip


def run_multi_project(
    project: Path, config: ProjectConfig, options: RunOptions, sep: str, console: Console
) -> None:
    """`run` on a multi-label project: checks first, then the job under the run lock."""
    refuse_unsupported(options)
    config = resolve_llm(config, options.llm, options.api_base)
    check_llm_choice(config.llm.model, options.oracle_file)
    if options.oracle_file is not None:
        regular_file(options.oracle_file)
    session = LabelingSession.open(project, config=config, progress=True)
    try:
        refuse_empty(session.store, project)
        gold = None
        if options.oracle_file is not None:
            gold = load_set_answers(options.oracle_file, session.store, sep, "oracle")
        if config.llm.model is not None and config.llm.model.startswith("replay:"):
            replay_sets(Path(config.llm.model.partition(":")[2]), session.store, sep)  # early
        with RunLock(session.store, default_holder(), force=options.force):
            session.store.close_interrupted_rounds(INTERRUPTED_NOTE)  # a killed run's round
            _run_locked(session, project, options, (gold, sep), console)
    finally:
        session.close()


def refuse_unsupported(options: RunOptions) -> None:
    """One line for a flag the multi-label job does not honour yet, never a silent ignore."""
    if options.engine == "ray" or options.ray_address:
        raise InputError("--engine ray / --ray-address is not supported for multi-label "
                         "projects yet", field="task")  # fmt: skip


def _run_locked(
    session: LabelingSession, project: Path, options: RunOptions,
    answers: tuple[dict[str, str] | None, str], console: Console,
) -> None:  # fmt: skip
    """Header, job, summary; `answers` is (the oracle's gold sets or None, the separator)."""
    from agent.labeller.multi import MultiLabeller

    gold, sep = answers
    config = session.config
    mode = f"LLM {config.llm.model}" if config.llm.model else "no LLM: classifier only"
    console.print(f"[bold]labelagent run[/] (multi-label) on {project}: {mode}"
                  + ("; simulated operator answers from the oracle file"
                     if gold else ""))  # fmt: skip
    _ = session.pool  # embed before the rounds
    backend = multi_backend(session, gold, sep)
    labeller = None
    if backend is not None:
        labeller = MultiLabeller(backend, session.label_set, config.llm, session.store)
    plan = options.plan
    # --target-accuracy: the exact-set accuracy that routing certifies for the LLM-answered
    # items as routed (people's sets right, accepted ones as audited)
    limits = MultiLimits(plan.rounds, plan.batch_size or config.batch_size, plan.human_budget,
                         plan.target_accuracy, llm_budget=plan.llm_budget)  # fmt: skip
    report = run_multi_job(session, limits, labeller, _oracle(gold), _progress(console),
                           fresh=options.fresh)  # fmt: skip
    console.print(f"stopped: {report.stop_reason}")
    info = multi_status(session.store, config)
    estimate = format_set_estimate(info["estimated_accuracy"])
    console.print(f"estimated exact-set accuracy: {estimate}", soft_wrap=True)
    if labeller is not None:
        spent = budget_note(plan.llm_budget) if report.llm_budget_reached else ""
        console.print(f"LLM in this run: {labeller.calls} paid calls, {labeller.cache_hits} cache "
                      "hits" + (f"; {spent}" if spent else ""), soft_wrap=True)  # fmt: skip


def _progress(console: Console) -> Callable[[str, dict[str, Any]], None]:
    """The job's events as lines: a resumed plan, each round, the final pass."""

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "resume":
            console.print(f"finishing the interrupted run: {data['rounds_done']} of "
                          f"{data['rounds']} rounds were done (--fresh starts a new run)",
                          soft_wrap=True)  # fmt: skip
        elif kind == "round":
            note = f"; {data['llm_note']}" if data.get("llm_note") else ""
            console.print(f"round {data['round']}: selected {data['selected']}, auto "
                          f"{data['auto_accepted']}, queued {data['queued']}, people answered "
                          f"{data['human_labels']}, LLM calls {data['llm_calls']}{note}",
                          soft_wrap=True)  # fmt: skip
        else:
            console.print(f"final pass: classifier labelled {data['labelled']}; final audit "
                          f"{data['audited']}")  # fmt: skip

    return on_event


def _oracle(gold: dict[str, str] | None) -> SetOracle | None:
    if gold is None:
        return None

    def oracle(item: Item) -> str | None:
        return gold.get(item.id)

    return oracle
