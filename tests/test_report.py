"""Every family contributes its own report sections."""

import pandas as pd

import scaling.report  # noqa: F401  (registers the family sections)
from scaling.report.render import table_html
from scaling.report.study import FAMILY_SECTIONS


def test_every_family_has_report_sections():
    from scaling.train.grid import FAMILY_REGISTRY, get_family

    get_family("decoder")  # loads the built-in families
    assert set(FAMILY_REGISTRY) == {"decoder", "encdec", "cpt", "select"}
    for family in FAMILY_REGISTRY:
        assert FAMILY_SECTIONS.get(family), family


def test_table_formats_numbers_and_escapes_text():
    html = table_html(pd.DataFrame({"name": ["<b>"], "n": [1234567], "x": [0.000123456], "nan": [float("nan")]}))
    assert "&lt;b&gt;" in html and "1,234,567" in html and "1.23e-4" in html and "–" in html
