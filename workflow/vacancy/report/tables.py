"""Self-contained HTML tables (the report shows an HTML output in a frame): no script, no link
to anything outside the page, every value escaped (ids and reasons come from strangers)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping, Sequence

from ..common import atomic_path

_STYLE = ("body{font:13px sans-serif;margin:12px}table{border-collapse:collapse;margin:8px 0 16px}"
          "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}th{background:#eee}"
          "td.n{text-align:right}")


def table(columns: Sequence[str], rows: Sequence[Mapping], caption: str = "") -> str:
    """One ``<table>``; numbers right-aligned."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c, "")
            numeric = isinstance(value, (int, float))
            text = f"{value:,.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
            cells.append(f"<td{' class=n' if numeric else ''}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, *parts: str, note: str = "") -> str:
    """A whole HTML page of ``parts`` (tables) under a heading and an optional note."""
    paragraph = f"<p>{html.escape(note)}</p>" if note else ""
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h2>{html.escape(title)}</h2>{paragraph}"
            f"{''.join(parts)}</body></html>\n")


def write_page(path: str | Path, text: str) -> None:
    """Write an HTML page atomically."""
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text(text, encoding="utf-8")
