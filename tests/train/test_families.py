"""The family registry: a family module that fails to import is an error naming it."""

import importlib

import pytest

from scaling.train import families
from scaling.train.grid import get_family


def test_builtin_families_registered():
    for name in ("decoder", "encdec", "cpt"):
        assert get_family(name).name == name


def test_missing_family_module_is_an_error_not_a_skipped_family():
    # before: a ModuleNotFoundError for the module itself was swallowed and the family vanished
    with pytest.raises(ImportError, match=r"family module scaling\.train\.no_such_family failed to import"):
        families.load_family_modules(("scaling.train.no_such_family",))


def test_family_module_import_failure_names_the_module(monkeypatch):
    real = importlib.import_module

    def failing(name, *args, **kwargs):
        if name == "scaling.train.encdec_family":
            raise ModuleNotFoundError("No module named 'sacrebleu'", name="sacrebleu")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(families.importlib, "import_module", failing)
    with pytest.raises(ImportError, match=r"scaling\.train\.encdec_family failed to import \(ModuleNotFoundError: "
                                          r"No module named 'sacrebleu'\)") as info:
        families.load_family_modules()
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
