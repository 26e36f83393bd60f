"""`labelagent report`: four PNG figures and one HTML page that holds them with the status.

The page is self-contained apart from the PNGs beside it (no script, no network): the status
table (`agent.app.status`), the figures, and a table of the rounds behind them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.app.render import format_estimate
from agent.app.report_data import RoundPoint, audit_confusion, round_points, spend
from agent.app.report_page import PAGE, fields_table, figures_grid, html_page, rows_table
from agent.app.report_plots import accuracy_plot, confusion_plot, llm_plot, spend_plot
from agent.app.status import project_status
from agent.config import ProjectConfig
from agent.routing.calibration import describe
from agent.store.protocol import ProjectStore

FIGURES = {
    "accuracy.png": "Estimated accuracy (with its 95% interval) after each round, against the "
    "human labels spent so far.",
    "llm.png": "How often the LLM and the classifier agreed on a round's items, and how often "
    "the LLM was right on its audited items.",
    "confusion.png": "Audited machine labels against people's answers.",
    "spend.png": "Human labels and LLM calls spent in each round.",
}


def write_report(store: ProjectStore, config: ProjectConfig, out: Path, title: str) -> Path:
    """Write the PNGs and the page into `out` (made if missing); the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    points = round_points(store, config.routing)
    spent = spend(store)
    accuracy_plot(points, out / "accuracy.png")
    llm_plot(points, out / "llm.png")
    confusion_plot(audit_confusion(store), out / "confusion.png")
    spend_plot(points, spent, out / "spend.png")
    status = project_status(store, config.routing, config.llm)
    page = out / PAGE
    page.write_text(_page(title, status, points), encoding="utf-8")
    return page


def status_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """The status table as (field, value) rows, as `labelagent status` shows it."""
    share = info["labelled"] / info["items"] if info["items"] else 0.0
    rows = [("items", f"{info['items']:,}"), ("labelled", f"{info['labelled']:,} ({share:.1%})")]
    rows += [(f"by {s}", f"{n:,}") for s, n in sorted(info["by_source"].items())]
    rows.append(("review queue", f"{info['queue']:,} pending, {info['reviewed']:,} reviewed"))
    llm = info["llm"]
    tokens = int(llm["prompt_tokens"] + llm["completion_tokens"])
    rows.append(("LLM calls", f"{int(llm['calls']):,} ({tokens:,} tokens, ${llm['cost_usd']:.4f})"))
    if info.get("llm_trust"):
        rows.append(("LLM trust", str(info["llm_trust"].get("note", ""))))
    rows.append(("estimated accuracy", format_estimate(info["estimated_accuracy"])))
    if info.get("p_right"):
        rows.append(("final_confidence", describe(info["p_right"])))
    agreement = info.get("agreement") or {}
    if agreement.get("kappa") is not None:
        rows.append(("operator agreement",
                     f"kappa {agreement['kappa']:.2f} on {agreement['items']} items"))  # fmt: skip
    return rows


def _page(title: str, status: dict[str, Any], points: list[RoundPoint]) -> str:
    return html_page(title, [("Status", fields_table(status_rows(status))),
                             ("Figures", figures_grid(FIGURES)),
                             ("Rounds", _rounds_table(points))])  # fmt: skip


def _rounds_table(points: list[RoundPoint]) -> str:
    def pct(x: float | None) -> str:
        return "–" if x is None else f"{x:.1%}"

    head = ("round", "human labels", "LLM calls", "estimate", "interval", "LLM–classifier agree",
            "LLM right on audits")  # fmt: skip
    rows = [
        (str(p.round), str(p.human_labels), str(p.llm_calls),
         pct(p.estimate["value"]) if p.estimate else "unknown",
         f"{pct(p.estimate['low'])} – {pct(p.estimate['high'])}" if p.estimate else "–",
         f"{pct(p.agreement)} of {p.compared}" if p.compared else "–",
         f"{pct(p.llm_right)} of {p.llm_audits}" if p.llm_audits else "–")
        for p in points
    ]  # fmt: skip
    return rows_table(head, rows, "rounds")
