"""`labelagent report` of a multi-label project: the same page and place as the single-label
report (`PROJECT/report/report.html` beside its PNGs), led by the exact-set accuracy estimate
and its interval, then micro- and macro-F1 of the audited sets and each label's precision and
recall, each with its interval. Every figure is the one `status --json` gives
(`multi_status`), only laid out; the spend is the single-label report's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.app.multi_export import format_figure, format_set_estimate, multi_status
from agent.app.report_data import spend, spend_points
from agent.app.report_page import PAGE, fields_table, figures_grid, html_page, rows_table
from agent.app.report_plots import label_plot, spend_plot
from agent.config import ProjectConfig
from agent.store.protocol import ProjectStore

FIGURES = {
    "labels.png": "Each label's precision and recall on the audited sets, with their intervals.",
    "spend.png": "Human labels and LLM calls spent in each round.",
}


def write_set_report(store: ProjectStore, config: ProjectConfig, out: Path, title: str) -> Path:
    """Write the PNGs and the page into `out` (made if missing); the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    info = multi_status(store, config)
    spent = spend(store)
    label_plot(info["audit_f1"], config.routing.confidence_level, out / "labels.png")
    spend_plot(spend_points(store), spent, out / "spend.png")
    sections = [("Status", fields_table(set_status_rows(info, spent))),
                ("Per label", _per_label_table(info["audit_f1"])),
                ("Figures", figures_grid(FIGURES))]  # fmt: skip
    page = out / PAGE
    page.write_text(html_page(title, sections), encoding="utf-8")
    return page


def set_status_rows(info: dict[str, Any], spent: dict[str, Any]) -> list[tuple[str, str]]:
    """The status table: the headline estimate first, then the audits' F1, counts and spend."""
    f1 = info["audit_f1"] or {}
    rows = [("estimated exact-set accuracy", format_set_estimate(info["estimated_accuracy"])),
            ("micro-F1", format_figure(f1.get("micro_f1"))),
            ("macro-F1", format_figure(f1.get("macro_f1"))),
            ("audited sets", str(f1.get("audits", 0))),
            ("items", f"{info['items']:,}")]  # fmt: skip
    rows += [(f"by status: {s}", f"{n:,}") for s, n in sorted(info["by_status"].items())]
    queue = info["queue"]
    rows.append(("review queue", f"{queue.get('pending', 0):,} pending, "
                 f"{queue.get('done', 0):,} reviewed"))  # fmt: skip
    llm = spent["llm"]
    rows.append(("human labels", f"{spent['human_labels']:,}"))
    rows.append(("LLM calls", f"{int(llm['calls']):,} (${llm['cost_usd']:.4f})"))
    return rows


def _per_label_table(audit_f1: dict[str, Any] | None) -> str:
    """One row per label the audited sets hold, in label-set order."""
    if not audit_f1:
        return "<p>No audited sets yet: the final audit of a run measures them.</p>"
    head = ("label", "precision", "recall", "machine gave it", "people gave it", "both")
    rows = [(name, format_figure(f["precision"]), format_figure(f["recall"]), str(f["machine"]),
             str(f["people"]), str(f["both"]))
            for name, f in audit_f1["per_label"].items()]  # fmt: skip
    return rows_table(head, rows, "labels")
