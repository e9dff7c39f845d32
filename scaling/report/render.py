"""Render a study report: one self-contained HTML file, figures inlined as base64 PNG.

Everything a section holds is text unless it is `markupsafe.Markup`; the template escapes
the rest (autoescape on for every template). Build markup only with `markup(...)`, which
escapes its arguments, or from `Table`s, which escape every cell.

A report opens with the summary of its answers: each section lists the `Answer`s it gives
(a value, its 95% interval, its held-out error) and `render_report` gathers them first.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup, escape
from matplotlib.figure import Figure

from scaling.store import atomic_write_bytes

PX_PER_INCH = 80
"""Display width of figures (rendered at 110 dpi, so sharp): two 6.4-inch figures fit side by side."""
COLLAPSE_ROWS = 12
"""Tables longer than this are collapsed (`<details>`) so that they do not push the figures down."""


def markup(template: str, *args: Any, **kwargs: Any) -> Markup:
    """`template` is trusted HTML written here; every argument is escaped."""
    return Markup(template).format(*args, **kwargs)


def join(parts: Sequence[Any], sep: str = "<br>") -> Markup:
    """Join text and markup pieces (text escaped) with the trusted separator `sep`."""
    return Markup(sep).join(escape(p) for p in parts if p)


# ------------------------------------------------------------------ number formatting


def signed_pct(rel: float, digits: int = 2) -> str:
    """+1.23% / -0.40%; a difference that rounds to zero reads +0.00%, never -0.00%."""
    return f"{round(rel, digits + 2) + 0.0:+.{digits}%}"


def sci(v: float, digits: int = 3) -> str:
    """1.636e+05 -> '1.64e5' (no '+', no leading zeros in the exponent)."""
    mant, exp = f"{v:.{digits - 1}e}".split("e")
    return f"{mant}e{int(exp)}"


def column_format(values: Sequence[Any], digits: int = 4):
    """One formatter for a whole column, chosen from its values, so a column reads in one format."""
    nums = [float(v) for v in values if _is_number(v) and math.isfinite(float(v))]
    if not nums or len(nums) < sum(1 for v in values if v is not None and not _is_nan(v)):
        return _text
    mags = [abs(v) for v in nums if v != 0]
    hi = max(mags, default=0.0)
    lo = min(mags, default=0.0)
    if all(isinstance(v, (int, np.integer)) for v in values if _is_number(v)) and hi < 1e7:
        return lambda v: _na(v) or f"{int(round(float(v))):,}"
    if hi >= 1e5 or (0 < lo < 1e-3):
        return lambda v: _na(v) or sci(float(v), min(digits, 3))
    decimals = 0 if lo == 0 else max(0, min(8, digits - 1 - math.floor(math.log10(lo))))
    return lambda v: _na(v) or f"{float(v):.{decimals}f}"


def fmt(v: Any, digits: int = 4) -> str:
    """One value alone, formatted as its column would be."""
    return column_format([v], digits)(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _is_nan(v: Any) -> bool:
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def _na(v: Any) -> str:
    return "–" if v is None or _is_nan(v) else ""


def _text(v: Any) -> str:
    if v is None or _is_nan(v):
        return "–"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


# ------------------------------------------------------------------ tables


@dataclass
class Table:
    """A table the template renders: cells escaped, one number format per column, sortable by
    clicking a header, collapsed when long, scrolling sideways when wide."""

    df: pd.DataFrame
    caption: str = ""
    digits: int = 4
    collapsed: bool | None = None
    """None: collapsed when longer than COLLAPSE_ROWS."""

    def __html__(self) -> str:
        df = self.df
        cols = [str(c) for c in df.columns]
        fmts = [column_format([_plain(v) for v in df[c]], self.digits) for c in df.columns]
        head = "".join(str(markup("<th>{}</th>", c)) for c in cols)
        rows = []
        for row in df.itertuples(index=False):
            cells = []
            for f, v in zip(fmts, row):
                v = _plain(v)
                key = f' data-v="{float(v)!r}"' if _is_number(v) and math.isfinite(float(v)) else ""
                cells.append(str(markup("<td{}>{}</td>", Markup(key), f(v))))
            rows.append("<tr>" + "".join(cells) + "</tr>")
        table = f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
        collapsed = len(df) > COLLAPSE_ROWS if self.collapsed is None else self.collapsed
        caption = self.caption or "Table"
        if collapsed:
            return str(markup("<details><summary>{} ({} rows; click to show)</summary>", caption, len(df))) + table + "</details>"
        return (str(markup('<p class="caption">{}</p>', self.caption)) if self.caption else "") + table


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v


def table_html(df: pd.DataFrame, digits: int = 4, caption: str = "") -> Markup:
    """A table as escaped HTML (see `Table`)."""
    return Markup(Table(df, caption, digits).__html__())


# ------------------------------------------------------------------ sections and answers


@dataclass
class Answer:
    """One answer a study gives, for the summary that opens the report."""

    label: str
    """What is answered, exactly (e.g. "L_inf at D = 4.0M tokens per run, eval set valid")."""
    value: float | str
    ci: tuple[float, float] | None = None
    """95% interval."""
    heldout_error: float | None = None
    """Mean |relative error| of the law predicting runs it was fitted without."""
    note: str = ""
    """E.g. the exact Bayes loss it is compared with, or a parameter at its bound."""
    digits: int = 4

    def cells(self) -> dict[str, str]:
        nums = [self.value, *(self.ci or ())]
        f = column_format(nums, self.digits) if _is_number(self.value) else str  # value and interval alike
        ci = "–" if self.ci is None or not all(map(math.isfinite, self.ci)) else f"{f(self.ci[0])} – {f(self.ci[1])}"
        held = "–" if self.heldout_error is None or not math.isfinite(self.heldout_error) else f"{self.heldout_error:.2%}"
        return {"value": f(self.value), "ci": ci, "heldout": held}


@dataclass
class Section:
    """One titled part of a report: text, tables, figures, and the answers it gives."""

    title: str
    text: str | Markup = ""
    """Plain text (escaped when rendered) or Markup built with `markup`/`join`."""
    tables: list[Table | Markup] = field(default_factory=list)
    figures: list[tuple[str, Figure]] = field(default_factory=list)
    """(caption, figure) pairs."""
    fit: Any = None
    """The fitted object the section shows, if any (lets callers reuse it without refitting)."""
    answers: list[Answer] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Shown highlighted: fits that failed, did not converge, or have parameters at a bound."""


def figure_data_uri(fig: Figure, dpi: int = 110) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("scaling.report", "templates"), autoescape=True)


def render_report(title: str, sections: list[Section], out: Path, subtitle: str = "") -> Path:
    """Write `out` (an index.html): the summary of every section's answers, then the sections.
    Nothing in it is loaded from the network."""
    anchors = [f"s{i}" for i in range(len(sections))]
    summary = [{"section": s.title, "anchor": a, "label": ans.label, "note": ans.note, **ans.cells()}
               for s, a in zip(sections, anchors) for ans in s.answers]
    warnings = [{"section": s.title, "anchor": a, "text": w} for s, a in zip(sections, anchors) for w in s.warnings]
    page = _env().get_template("report.html.j2").render(
        title=title, subtitle=subtitle, generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        summary=summary, warnings=warnings,
        sections=[{"title": s.title, "anchor": a, "text": s.text, "tables": s.tables, "warnings": s.warnings,
                   "figures": [(cap, figure_data_uri(fig), int(fig.get_figwidth() * PX_PER_INCH))
                               for cap, fig in s.figures]}
                  for s, a in zip(sections, anchors)])
    atomic_write_bytes(out, page.encode())
    return out
