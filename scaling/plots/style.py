"""Shared axis styling."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.ticker import FormatStrFormatter, LogFormatterSciNotation, LogLocator, MaxNLocator, NullFormatter, NullLocator


def log_axis(ax: Axes, which: str = "y") -> None:
    """Log-scaled axis with readable labels. Spanning less than a decade (as a study's losses
    usually do), plain evenly chosen ticks (1.45, 1.5, ...) instead of matplotlib's crowded
    mantissa × 10^k minor labels; wider, labelled decades and unlabelled minor ticks. Call after
    plotting, so the limits are known."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    if 0 < lo and hi / lo < 10:
        axis.set_major_locator(MaxNLocator(nbins=5))
        axis.set_minor_locator(NullLocator())
        axis.set_major_formatter(FormatStrFormatter("%.3g"))
    else:
        axis.set_major_locator(LogLocator(base=10, numticks=8))
        axis.set_major_formatter(LogFormatterSciNotation())
        axis.set_minor_formatter(NullFormatter())


def log_loss_axis(ax: Axes) -> None:
    """Log-scaled y axis with readable labels (see `log_axis`)."""
    log_axis(ax, "y")
