"""Public reference data shipped with the package, loadable by name (in the manner of seaborn's
`load_dataset`): `list_datasets()`, `load_dataset(name)`, `dataset_path(name)`.

Each data set is a published scaling measurement with its provenance and citation (see
README.md beside this file); tests check the fitters against the results its paper reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from scaling.errors import DataError
from scaling.tables import read_table


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str
    description: str
    citation: str
    source: str


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("chinchilla_epoch", "chinchilla_epoch.csv",
            "245 (N, C, loss) points digitised from Chinchilla's Figure 4; adds N, C and D = C / (6 N)",
            "Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt",
            "epoch-research/analyzing-chinchilla, data/svg_extracted_data.csv"),
    Dataset("nmt_gordon2021", "nmt_gordon2021.tsv",
            "240 NMT runs (de-en, ru-en, zh-en): model shape, data bytes, dev cross-entropy and BLEU",
            "Gordon et al. 2021, Data and parameter scaling laws for neural machine translation",
            "mitchellgordon95/mt-scaling, summaries/data_scaling.0126.summary"),
    Dataset("llama3_isoflops", "llama3_isoflops.csv",
            "266 IsoFLOP points (tokens, params, budget, loss) digitised from Llama 3's Figure 2",
            "Llama Team 2024, The Llama 3 Herd of Models (digitised by Open-Athena)",
            "Open-Athena/scaling-law-analysis, data/isoflops/extract/llama_3/isoflops.csv"),
)}


def list_datasets() -> list[Dataset]:
    return list(DATASETS.values())


def _get(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; shipped datasets are: {', '.join(DATASETS)}")
    return DATASETS[name]


def dataset_path(name: str) -> Path:
    """The shipped file of data set `name` (inside the installed package)."""
    return Path(str(resources.files(__name__).joinpath(_get(name).file)))


def load_dataset(name: str) -> pd.DataFrame:
    """The data set `name` as a DataFrame (TSV comment lines dropped; convenience columns added)."""
    df = read_table(dataset_path(name))
    if name == "chinchilla_epoch":
        df["N"] = df["Model Size"]
        df["C"] = df["Training FLOP"]
        df["D"] = df["C"] / (6 * df["N"])
    return df


__all__ = ["DATASETS", "Dataset", "dataset_path", "list_datasets", "load_dataset"]
