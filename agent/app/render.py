"""Rich rendering of status and run summaries for the CLI (no logic, only layout)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


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
    trust = info.get("llm_trust")
    if trust:
        table.add_row("LLM trust", str(trust["note"]))
    table.add_row("estimated accuracy", format_estimate(info["estimated_accuracy"]))
    agreement = info.get("agreement") or {}
    if agreement.get("kappa") is not None:
        table.add_row(
            "operator agreement", f"kappa {agreement['kappa']:.2f} on {agreement['items']} items"
        )
    console.print(table)
