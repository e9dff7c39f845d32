import pandas as pd
import pytest

from scaling.laws.cli_support import load_table

DATA = "/work/shared/data"


@pytest.fixture(scope="session")
def chinchilla_df() -> pd.DataFrame:
    """Besiroglu et al.'s 240 points: the 5 highest losses dropped, D = C / (6 N)."""
    df = pd.read_csv(f"{DATA}/chinchilla_epoch_svg_extracted.csv").rename(columns={"Model Size": "N", "Training FLOP": "C"})
    df = df.sort_values("loss").iloc[:-5].reset_index(drop=True)
    df["D"] = df["C"] / (6 * df["N"])
    return df


@pytest.fixture(scope="session")
def hoffmann_fit(chinchilla_df):
    from scaling.laws import get_law

    return get_law("chinchilla", init="hoffmann").fit(chinchilla_df, x=["N", "D"], y="loss")


@pytest.fixture(scope="session")
def nmt_df() -> pd.DataFrame:
    df = load_table(f"{DATA}/nmt_gordon2021_data_scaling.tsv", where="data_bytes > 5 * 2**20")
    df["params"] = 2 * df["Layers"] * (4 * df["ModelSize"] ** 2 + 2 * df["ModelSize"] * df["FeedForward"])
    return df
