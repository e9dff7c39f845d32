"""Fixtures of the report tests; the synthetic stores themselves live in synthetic_stores.py
(a module name of its own, so it never collides with the other test folders' conftest)."""

from synthetic_stores import decoder_store  # noqa: F401
