"""Export and status of a multi-label project: every item in input order with its final set
(a list in JSONL and Parquet, names joined by the separator in CSV), its status and the
evidence behind it, or a Label Studio, Argilla or Prodigy file of its sets (`--format`); the
exact-set accuracy estimate with micro/macro F1 of the audits beside it, in `status` and in
`<OUT>.summary.json`."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.app.export import _safe_cell, check_target
from agent.app.formats import format_module
from agent.app.formats.choices import Choices
from agent.app.formats.collect import collect_tasks
from agent.config import ProjectConfig
from agent.labeller.set_scores import METHOD_WORDS
from agent.loop.multi_results import COLUMNS, LIST_COLUMNS, set_records
from agent.routing.multi import AUDIT_META, audit_f1, exact_set_estimate
from agent.routing.sources import HUMAN_SOURCES, current_labels
from agent.store.protocol import ProjectStore
from agent.types import Source


def multi_status(store: ProjectStore, config: ProjectConfig) -> dict[str, Any]:
    """Counts by status, the queue, the exact-set estimate and the audits' F1."""
    by_status: dict[str, int] = {}
    for record in set_records(store):
        by_status[record["label_status"]] = by_status.get(record["label_status"], 0) + 1
    currents = current_labels(store)
    truth = {k: c.label for k, c in currents.items()
             if c.source in HUMAN_SOURCES and c.label is not None}  # fmt: skip
    audit = store.get_meta(AUDIT_META)
    items = store.count_items()
    level = config.routing.confidence_level
    estimate = exact_set_estimate(items, len(truth) - _audited(audit, truth), audit, truth,
                                  level) if items else None  # fmt: skip
    draws = [(s, truth[int(k)]) for k, s, _ in (audit or {}).get("draws", []) if int(k) in truth]
    return {"task": "multi_label", "items": items, "by_status": by_status,
            "queue": store.queue_counts(), "estimated_accuracy": estimate,
            "audit_f1": audit_f1(draws, store.label_set, level),
            "llm_confidence": llm_methods(store),
            "label_set": list(store.label_set.names)}  # fmt: skip


def llm_methods(store: ProjectStore) -> dict[str, int]:
    """How the LLM's per-label scores were read, by method: items whose newest LLM answer
    each method scored (an answer from before methods were kept was a stated one)."""
    counts: dict[str, int] = {}
    for row in store.latest_votes(Source.LLM.value).values():
        meta = row.get("meta") or {}
        meta = json.loads(meta) if isinstance(meta, str) else meta
        method = str(meta.get("confidence_method", "stated"))
        counts[method] = counts.get(method, 0) + 1
    return counts


def _audited(audit: dict[str, Any] | None, truth: dict[int, str]) -> int:
    """Audited items, now human-labelled, belong to the audited machine population."""
    return sum(1 for k, _, _ in (audit or {}).get("draws", []) if int(k) in truth)


def format_set_estimate(est: dict[str, Any] | None) -> str:
    if est is None:
        return "no items"
    if est["value"] is None:
        return (f"unknown (between {est['low']:.1%} and 100%: no audit of the machine sets "
                "yet)")  # fmt: skip
    return (f"at least {est['low']:.1%} ({est['value']:.1%}, {est['level']:.0%} interval "
            f"{est['low']:.1%} - {est['high']:.1%}; {est['method']}, {est['audits']} audited)")


def render_multi_status(info: dict[str, Any]) -> list[str]:
    """The lines `status` prints for a multi-label project."""
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(info["by_status"].items()))
    lines = [f"{info['items']} items (multi-label): {statuses}",
             f"queue: {json.dumps(info['queue'])}",
             f"estimated exact-set accuracy: {format_set_estimate(info['estimated_accuracy'])}"]
    methods = info.get("llm_confidence")
    if methods:
        lines.append("LLM scores per label from " + ", ".join(
            f"{METHOD_WORDS.get(m, m)} ({n} items)" for m, n in sorted(methods.items())))
    f1 = info.get("audit_f1")
    if f1:
        lines.append(f"audited sets ({f1['audits']}): micro-F1 {format_figure(f1['micro_f1'])}"
                     f", macro-F1 {format_figure(f1['macro_f1'])}")  # fmt: skip
    return lines


def format_figure(figure: dict[str, float] | None) -> str:
    """A figure of the audits with its interval, "0.812 (0.701 - 0.903)"; "–" for none."""
    if figure is None:
        return "–"
    return f"{figure['value']:.3f} ({figure['low']:.3f} - {figure['high']:.3f})"


def export_sets(
    store: ProjectStore, config: ProjectConfig, out: Path, how: tuple[str | None, str]
) -> dict[str, Any]:
    """Write the corpus, or a tool's file (`how`: format or None, CSV separator), and
    `<OUT>.summary.json`; for a tool that needs one, also its project settings beside it
    (`<OUT>.config.xml` for Label Studio, `<OUT>.settings.json` for Argilla). Each goes
    through a `.partial` file renamed at the end: a failure leaves none of them half written."""
    fmt, sep = how
    check_target(out, fmt)
    summary = multi_status(store, config)
    files: dict[Path, Callable[[Path], None]] = {}
    setup = None
    if fmt is None:
        files[out] = lambda path: _write_corpus(path, store, (out.suffix.lower(), sep), summary)
    else:
        tool, choices = format_module(fmt, out), Choices(store.label_set, multiple=True)
        files[out] = lambda path: tool.write(path, collect_tasks(store), choices, "text")
        setup = tool.setup(choices, "text")  # (suffix, text), or None: the file says it all
    files[Path(f"{out}.summary.json")] = lambda path: _write_text(
        path, json.dumps(summary, indent=2) + "\n")  # fmt: skip
    if setup is not None:
        files[Path(f"{out}{setup[0]}")] = lambda path: _write_text(path, setup[1])
    _write_all(files)
    labelled = sum(n for s, n in summary["by_status"].items() if s != "none")
    setup_file = f"{out}{setup[0]}" if setup is not None else None
    return {**summary, "labelled": labelled, "setup_file": setup_file}


def _write_corpus(
    path: Path, store: ProjectStore, how: tuple[str, str], summary: dict[str, Any]
) -> None:
    """The records into `path` (the target's `.partial`) in the form of `how`: (the target's
    suffix, the CSV separator)."""
    suffix, sep = how
    if suffix == ".csv":
        _write_csv(path, set_records(store), sep)
    elif suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as handle:
            for record in set_records(store):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        _write_parquet(path, set_records(store), summary)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _write_all(files: dict[Path, Callable[[Path], None]]) -> None:
    """Each writer writes its file's `.partial`; then all are renamed into place (a reader
    never sees half a file); on any failure the partial files go."""
    partial = {p: p.with_name(p.name + ".partial") for p in files}
    try:
        for path, write in files.items():
            write(partial[path])
        for path, tmp in partial.items():
            tmp.replace(path)
    except BaseException:
        for tmp in partial.values():
            tmp.unlink(missing_ok=True)
        raise


def _write_csv(path: Path, records: Iterator[dict[str, Any]], sep: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for record in records:
            row = {k: sep.join(v) if k in LIST_COLUMNS else v for k, v in record.items()}
            writer.writerow({k: _safe_cell("" if v is None else v) for k, v in row.items()})


def _write_parquet(path: Path, records: Iterator[dict[str, Any]], summary: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def kind(c: str) -> Any:
        if c in LIST_COLUMNS:
            return pa.list_(pa.string())
        return pa.float64() if c == "final_confidence" else pa.string()

    fields = [(c, kind(c)) for c in COLUMNS]
    schema = pa.schema(fields, metadata={"labelagent.summary": json.dumps(summary)})
    pq.write_table(pa.Table.from_pylist(list(records), schema=schema), path)
