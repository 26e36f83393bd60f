"""Export every item, in input order, with its label and provenance: CSV, JSONL or Parquet,
or a Label Studio, Argilla or Prodigy file (`fmt`, see `agent.app.formats`).

A summary (label counts by source, the accuracy estimate with its interval) is written beside
the file as `<OUT>.summary.json`, and into the Parquet schema metadata.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.app.formats import format_module
from agent.app.formats.choices import Choices
from agent.app.formats.collect import collect_tasks
from agent.config import RoutingConfig
from agent.errors import InputError
from agent.loop.results import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, result_records
from agent.routing.final_answer import final_answers, status_counts
from agent.routing.sources import counts_by_source
from agent.store.protocol import ProjectStore

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


def export(
    store: ProjectStore, out: str | os.PathLike[str], fmt: str | None = None
) -> dict[str, Any]:
    """Write the corpus to `out` (format by extension) and the summary beside it, both or
    neither: each goes to a `.partial` file renamed at the end; on any failure the partial
    files, a new `out` already renamed and the folders made for them are removed, and an
    OSError names `out`. (Over an older export, a failure between the two renames leaves the
    new file beside the old summary.)"""
    out = Path(out)  # the library passes str paths too
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
            module = format_module(fmt, out)
            module.write(tmp, collect_tasks(store), Choices(store.label_set), "text")
        elif writer is not None:
            writer(tmp, result_records(store))
        else:
            _write_parquet(tmp, result_records(store), summary)
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
        "by_status": status_counts(final_answers(store)),
        "estimated_accuracy": estimate.to_json() if estimate else None,
        "label_set": list(store.label_set.names),
    }


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
                if c in FLOAT_COLUMNS
                else pa.int64()
                if c in INT_COLUMNS
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
