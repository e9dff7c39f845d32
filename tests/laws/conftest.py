import pandas as pd
import pytest

from scaling.datasets import dataset_path, load_dataset
from scaling.laws.cli_support import load_table


@pytest.fixture(scope="session")
def chinchilla_df() -> pd.DataFrame:
    """Besiroglu et al.'s 240 points: the 5 highest losses dropped, D = C / (6 N)."""
    df = load_dataset("chinchilla_epoch")
    return df.sort_values("loss").iloc[:-5].reset_index(drop=True)


@pytest.fixture(scope="session")
def hoffmann_fit(chinchilla_df):
    from scaling.laws import get_law

    return get_law("chinchilla", init="hoffmann").fit(chinchilla_df, x=["N", "D"], y="loss")


@pytest.fixture(scope="session")
def nmt_df() -> pd.DataFrame:
    df = load_table(dataset_path("nmt_gordon2021"), where="data_bytes > 5 * 2**20")
    df["params"] = 2 * df["Layers"] * (4 * df["ModelSize"] ** 2 + 2 * df["ModelSize"] * df["FeedForward"])
    return df
