"""Figures (matplotlib.figure.Figure, no pyplot state) for studies and fitted laws."""

from scaling.plots.advise import plot_advice
from scaling.plots.cpt import plot_loss_vs_share, plot_rewarm_tradeoff, plot_share_choice
from scaling.plots.curves import plot_curves
from scaling.plots.encdec import plot_bleu_vs_ce, plot_encdec_contours
from scaling.plots.laws import plot_fit, plot_frontier, plot_isoloss, plot_residuals

__all__ = [
    "plot_advice",
    "plot_bleu_vs_ce",
    "plot_curves",
    "plot_encdec_contours",
    "plot_fit",
    "plot_frontier",
    "plot_isoloss",
    "plot_loss_vs_share",
    "plot_residuals",
    "plot_rewarm_tradeoff",
    "plot_share_choice",
]
