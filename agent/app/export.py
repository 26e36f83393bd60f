"""Export every item, in input order, with its label and provenance: CSV, JSONL or Parquet,
or a Label Studio, Argilla or Prodigy file (`fmt`, see `agent.app.formats`).

A summary (label counts by source, the accuracy estimate with its interval) is written beside
the file as `<OUT>.summary.json`, and into the Parquet schema metadata.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.app.formats import format_module
from agent.app.formats.collect import collect_tasks
from agent.config import RoutingConfig
from agent.errors import InputError
from agent.routing.sources import counts_by_source, current_labels
from agent.store.protocol import ProjectStore
from agent.types import CurrentLabel, Source

COLUMNS = [
    "id",
    "text",
    "label",
    "source",
    "confidence",
    "actor",
    "round",
    "prompt_hash",
    "labelled_at",
    "suggested_label",
    "llm_label",
    "llm_confidence",
    "llm_rationale",
]
WRITERS = (".csv", ".jsonl", ".parquet")
# A cell starting with one of these is run as a formula by spreadsheet programs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def check_target(out: Path, fmt: str | None = None) -> None:
    """Refuse, before the project is opened, a target that cannot become the export file."""
    suffix = out.suffix.lower()
    if fmt is not None:
        format_module(fmt, out)
    elif suffix not in WRITERS:
        raise InputError(
            f"unknown export format '{suffix}'; use one of {', '.join(WRITERS)}", file=str(out)
        )
    if out.is_dir():
        raise InputError(
            f"is a folder; give a file name, e.g. {out / ('labels' + suffix)}", file=str(out)
        )
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise InputError(f"{blocker} is a file, not a folder; fix the path", file=str(out))


def export(store: ProjectStore, out: Path, fmt: str | None = None) -> dict[str, Any]:
    """Write the corpus to `out` (format by extension) and the summary beside it, both or
    neither: each goes to a `.partial` file renamed at the end; on any failure the partial
    files, a new `out` already renamed and the folders made for them are removed, and an
    OSError names `out`. (Over an older export, a failure between the two renames leaves the
    new file beside the old summary.)"""
    check_target(out, fmt)
    summary = export_summary(store)
    summary_path = Path(f"{out}.summary.json")
    tmp, tmp_summary = (p.with_name(p.name + ".partial") for p in (out, summary_path))
    made: list[Path] = []
    new = [p for p in (out, summary_path) if not p.exists()]  # removed again on failure
    try:
        _make_folders(out.parent, made)
        writer = {".csv": _write_csv, ".jsonl": _write_jsonl}.get(out.suffix.lower())
        if fmt is not None:
            format_module(fmt, out).write(tmp, collect_tasks(store), store.label_set.names, "text")
        elif writer is not None:
            writer(tmp, export_records(store))
        else:
            _write_parquet(tmp, export_records(store), summary)
        tmp_summary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        tmp.replace(out)  # atomic: a reader never sees half a file
        tmp_summary.replace(summary_path)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # a failed export leaves the old file, no debris
            for path in (tmp, tmp_summary, *new):
                path.unlink(missing_ok=True)
            for folder in reversed(made):
                folder.rmdir()
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            raise OSError(exc.errno, exc.strerror or _first_line(exc), str(out)) from None
        raise
    return summary


def _make_folders(folder: Path, made: list[Path]) -> None:
    """Create `folder` and its missing parents, outermost first, noting each in `made`."""
    missing: list[Path] = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing.append(path)
    for path in reversed(missing):
        path.mkdir()
        made.append(path)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def export_summary(store: ProjectStore, routing: RoutingConfig | None = None) -> dict[str, Any]:
    """Counts and the accuracy estimate, recomputed from the evidence as `status` does."""
    from agent.routing.accuracy import estimate_from_store

    labelled = counts_by_source(store)
    estimate = estimate_from_store(store, routing or RoutingConfig())
    return {
        "items": store.count_items(),
        "labelled": sum(labelled.values()),
        "by_source": labelled,
        "estimated_accuracy": estimate.to_json() if estimate else None,
        "label_set": list(store.label_set.names),
    }


def export_records(store: ProjectStore) -> Iterator[dict[str, Any]]:
    """One dict per item in input order; unlabelled items carry an empty label and, where the
    machines have one, a suggested label (what the accuracy estimate counts for them)."""
    current = current_labels(store)
    llm_votes = store.latest_votes(Source.LLM.value)
    suggested = store.suggested_labels()
    for batch in store.iter_items():
        for item in batch:
            record = _record(item.id, item.text, current.get(item.key), llm_votes.get(item.key))
            if not record["label"]:
                record["suggested_label"] = suggested.get(item.key)
            yield record


def _record(
    ext_id: str, text: str, label: CurrentLabel | None, vote: dict[str, Any] | None
) -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(COLUMNS, None)
    record.update(id=ext_id, text=text, label="")
    if label is not None:
        record.update(
            label=label.label or "",
            source=label.source,
            confidence=label.confidence,
            actor=label.actor,
            round=label.round,
            prompt_hash=label.prompt_hash or None,
            labelled_at=_iso(label.created_at),
        )
    if vote is not None:
        record.update(
            llm_label=vote["label"],
            llm_confidence=vote["confidence"],
            llm_rationale=vote["rationale"],
        )
    return record


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")


def _safe_cell(value: Any) -> Any:
    """Neutralise spreadsheet formula injection by prefixing a quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _write_csv(path: Path, records: Iterator[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow({k: _safe_cell("" if v is None else v) for k, v in record.items()})


def _write_jsonl(path: Path, records: Iterator[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _write_parquet(path: Path, records: Iterator[dict[str, Any]], summary: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            (
                c,
                pa.float64()
                if c in ("confidence", "llm_confidence")
                else pa.int64()
                if c == "round"
                else pa.string(),
            )
            for c in COLUMNS
        ],
        metadata={"labelagent.summary": json.dumps(summary)},
    )
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append(record)
            if len(batch) >= 50_000:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
