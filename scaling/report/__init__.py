"""Self-contained HTML reports of studies."""

from scaling.report.render import Section, figure_data_uri, render_report, table_html
from scaling.report.study import (LawFit, ReportOptions, build_report, fit_with_holdout, law_section, register_sections,
                                  size_fits)

__all__ = ["LawFit", "ReportOptions", "Section", "build_report", "figure_data_uri", "fit_with_holdout", "law_section",
           "register_sections", "render_report", "size_fits", "table_html"]

# Family sections register themselves on import.
from scaling.report import cpt as _cpt  # noqa: E402,F401
from scaling.report import encdec as _encdec  # noqa: E402,F401
