"""Shared axis styling."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.ticker import FormatStrFormatter, MaxNLocator, NullLocator


def log_loss_axis(ax: Axes) -> None:
    """Log-scaled y axis; when the data span less than a decade (as losses of a study usually
    do), plain evenly chosen ticks (1.45, 1.5, ...) instead of matplotlib's mantissa × 10^0
    minor labels. Call after plotting, so the limits are known."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    if 0 < lo and hi / lo < 10:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
