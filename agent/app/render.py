"""Rich rendering of status and run summaries for the CLI (no logic, only layout)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from agent.routing.calibration import describe


def format_estimate(estimate: dict[str, Any] | None) -> str:
    """The lower bound first (what the project can stand behind), then the point value, the
    interval, how it was made and on how many audited items."""
    if not estimate:
        return "unknown: nobody has checked any label yet (review or audit some)"
    level = float(estimate.get("level", 0.95))
    how = estimate.get("method", "stratified-exact")
    audits = estimate.get("audits")
    basis = f"{how}, {audits} audited" if audits is not None else how
    return (
        f"at least {estimate['low']:.1%} ({estimate['value']:.1%}, {level:.0%} interval "
        f"{estimate['low']:.1%} - {estimate['high']:.1%}; {basis})"
    )


def render_status(console: Console, info: dict[str, Any]) -> None:
    table = Table(title="labelagent status", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    share = info["labelled"] / info["items"] if info["items"] else 0.0
    table.add_row("items", f"{info['items']:,}")
    table.add_row("labelled", f"{info['labelled']:,} ({share:.1%})")
    long_texts = info.get("long_texts") or {}
    if long_texts.get("items"):
        cut = f"{long_texts['items']:,} cut to {long_texts['over_chars']:,} characters"
        table.add_row("long texts", f"{cut} for a prompt")
    for source, count in sorted(info["by_source"].items()):
        table.add_row(f"  by {source}", f"{count:,}")
    table.add_row("review queue", f"{info['queue']:,} pending, {info['reviewed']:,} reviewed")
    llm = info["llm"]
    tokens = llm["prompt_tokens"] + llm["completion_tokens"]
    table.add_row("LLM calls", f"{llm['calls']:,} ({tokens:,} tokens, ${llm['cost_usd']:.4f})")
    if info.get("spend"):
        table.add_row("spend", format_spend(info["spend"]))
    if info.get("llm_failed_items"):
        table.add_row("LLM failed", f"{info['llm_failed_items']:,} items (the next run asks again)")
    trust = info.get("llm_trust")
    if trust:
        table.add_row("LLM trust", str(trust["note"]))
    table.add_row("final labels", format_statuses(info.get("by_status") or {}))
    table.add_row("final_label accuracy", format_estimate(info["estimated_accuracy"]))
    if info.get("p_right"):
        table.add_row("final_confidence", describe(info["p_right"]))
    if info.get("target"):
        table.add_row("target", format_target(info["target"], info["estimated_accuracy"]))
    agreement = info.get("agreement") or {}
    if agreement.get("kappa") is not None:
        table.add_row(
            "operator agreement", f"kappa {agreement['kappa']:.2f} on {agreement['items']} items"
        )
    console.print(table)
    for line in next_steps(info):
        console.print(line, markup=False, soft_wrap=True)


def format_spend(spend: dict[str, Any]) -> str:
    """People's dollars beside the LLM's (people's only where a price is configured)."""
    people = f"{spend['human_labels']:,} labels"
    if spend["human_usd"] is None:
        people += " (set routing.human_label_usd to price them)"
    else:
        people = f"${spend['human_usd']:,.2f} ({people})"
    return f"people {people}, LLM ${spend['llm_usd']:,.4f} ({spend['llm_calls']:,} calls)"


def format_statuses(by_status: dict[str, int]) -> str:
    """Rows per `label_status` of the export, in the order a reader needs them."""
    return ", ".join(f"{by_status.get(s, 0):,} {s}" for s in ("human", "auto", "suggested", "none"))


def format_target(target: dict[str, Any], estimate: dict[str, Any] | None) -> str:
    goal = f"{target['accuracy']:.1%}"
    if target["met"]:
        return f"{goal}: met (lower bound {estimate['low']:.1%})" if estimate else goal
    if estimate is None:
        return f"{goal}: not met (nothing checked yet)"
    return f"{goal}: NOT met (lower bound {estimate['low']:.1%})"


def next_steps(info: dict[str, Any]) -> list[str]:
    """What the reader can do next, with the command; one line each."""
    folder = info.get("folder") or "DIR"
    counts = info.get("by_status") or {}
    lines = []
    if counts.get("suggested"):
        lines.append(
            f"{counts['suggested']:,} rows wait for review: labelagent review {folder}; "
            "until then their best guesses are in the export's final_label"
        )
    unanswered = counts.get("none", 0) - info.get("none_fits", 0)
    if unanswered > 0 and not counts.get("suggested"):
        lines.append(f"{unanswered:,} rows have no answer yet: labelagent run {folder}")
    if info.get("llm_failed_items"):
        lines.append(
            f"{info['llm_failed_items']:,} items' LLM calls failed: labelagent run {folder} "
            "asks them again"
        )
    target = info.get("target")
    if target and not target["met"]:
        lines.append(
            "the target is not met: review more rows, or rerun with a larger --human-budget"
        )
    return lines
