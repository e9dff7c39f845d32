"""Self-contained HTML reports of studies."""

from scaling.report.fits import LawFit, ReportOptions, fit_with_holdout, law_section
from scaling.report.render import Answer, Section, Table, figure_data_uri, join, markup, render_report, table_html
from scaling.report.study import build_report, register_sections, size_fits

__all__ = ["Answer", "LawFit", "ReportOptions", "Section", "Table", "build_report", "figure_data_uri",
           "fit_with_holdout", "join", "law_section", "markup", "register_sections", "render_report", "size_fits",
           "table_html"]

# Family sections register themselves on import, in report order: "which runs next" comes last.
from scaling.report import cpt as _cpt  # noqa: E402,F401
from scaling.report import encdec as _encdec  # noqa: E402,F401
from scaling.report import select as _select  # noqa: E402,F401
from scaling.report import advise as _advise  # noqa: E402,F401,I001
