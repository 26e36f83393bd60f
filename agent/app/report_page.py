"""The report page both tasks share: one self-contained HTML file (no script, no network)
beside its PNGs, made of titled sections: a table of fields, the figures, tables of rows."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

PAGE = "report.html"

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{padding:.25em .8em;"
    "border-bottom:1px solid #ddd;text-align:left}.status th{width:12em}"
    ".figures{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1em}"
    "figure{margin:0}img{max-width:100%}figcaption{font-size:.9em;color:#555}"
)


def html_page(title: str, sections: Iterable[tuple[str, str]]) -> str:
    """The page: `title`, then each (heading, HTML body) section in order."""
    esc = html.escape
    body = "".join(f"<h2>{esc(heading)}</h2>{content}" for heading, content in sections)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1>{body}</body></html>\n"
    )


def fields_table(rows: Iterable[tuple[str, str]]) -> str:
    """(field, value) rows as the status table."""
    esc = html.escape
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="status">{cells}</table>'


def figures_grid(figures: dict[str, str]) -> str:
    """Each PNG beside the page, with its caption (file name -> caption)."""
    esc = html.escape
    cells = "".join(
        f'<figure><img src="{name}" alt="{esc(caption)}"><figcaption>{esc(caption)}'
        "</figcaption></figure>"
        for name, caption in figures.items()
    )
    return f'<div class="figures">{cells}</div>'


def rows_table(head: Sequence[str], rows: Iterable[Sequence[str]], css: str) -> str:
    """A table with a header row; every cell escaped."""
    esc = html.escape
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{css}"><tr>{cells}</tr>{body}</table>'
