"""Render a study report: one self-contained HTML file, figures inlined as base64 PNG."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from matplotlib.figure import Figure

from scaling.store import atomic_write_bytes


@dataclass
class Section:
    """One titled part of a report: a short text, tables (HTML fragments) and figures."""

    title: str
    text: str = ""
    tables: list[str] = field(default_factory=list)
    figures: list[tuple[str, Figure]] = field(default_factory=list)
    """(caption, figure) pairs."""
    fit: Any = None
    """The fitted object the section shows, if any (lets callers reuse it without refitting)."""


def figure_data_uri(fig: Figure, dpi: int = 110) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def table_html(df: pd.DataFrame, digits: int = 4) -> str:
    """A plain HTML table with numbers formatted to `digits` significant figures."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{fmt(v.item() if hasattr(v, 'item') else v, digits)}</td>" for v in row)
                   + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def render_report(title: str, sections: list[Section], out: Path, subtitle: str = "") -> Path:
    """Write `out` (an index.html); nothing in it is loaded from the network."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("scaling.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))
    page = env.get_template("report.html.j2").render(
        title=title, subtitle=subtitle, generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        sections=[{"title": s.title, "text": s.text, "tables": s.tables,
                   "figures": [(cap, figure_data_uri(fig)) for cap, fig in s.figures]} for s in sections])
    atomic_write_bytes(out, page.encode())
    return out
