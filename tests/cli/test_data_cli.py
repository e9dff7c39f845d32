"""`scaling data prepare / info`, and a study trained on a prepared corpus."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from typer.testing import CliRunner

from scaling.cli import app
from scaling.errors import DataError

runner = CliRunner()
WORDS = "the a loss model data scaling law tokens parameters compute".split()


def _texts(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [f"{i}: " + " ".join(rng.choice(WORDS, 40)) for i in range(n)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "texts"
    d.mkdir()
    for i, t in enumerate(_texts(60)):
        (d / f"{i}.txt").write_text(t)
    return d


def _word_tokenizer(path: Path, n: int) -> Path:
    vocab = {w: i for i, w in enumerate(WORDS)} | {f"x{i}": len(WORDS) + i for i in range(n - len(WORDS) - 2)}
    vocab |= {"[UNK]": n - 2, "</s>": n - 1}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece()
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def test_prepare_folder_then_info(folder, tmp_path):
    out = tmp_path / "prep"
    r = runner.invoke(app, ["data", "prepare", str(folder), "--out", str(out), "--valid-fraction", "0.2"])
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "uint16" in r.output and 'source = "prepared"' in r.output
    meta = json.loads((out / "meta.json").read_text())
    total = sum(len(t.encode()) + 1 for t in _texts(60))
    assert meta["train"]["n_tokens"] + meta["valid"]["n_tokens"] == total
    assert meta["train"]["n_docs"] + meta["valid"]["n_docs"] == 60
    r = runner.invoke(app, ["data", "prepare", str(folder), "--out", str(out), "--valid-fraction", "0.2", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["up_to_date"] is True
    r = runner.invoke(app, ["data", "info", str(out), "--json"])
    assert r.exit_code == 0 and json.loads(r.output) == meta
    r = runner.invoke(app, ["data", "info", str(out)])
    assert r.exit_code == 0 and f"train {meta['train']['n_tokens']:,} tokens" in r.output


def test_prepare_jsonl_with_options_and_tokenizer_json(tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text("\n".join(json.dumps({"content": t}) for t in _texts(50)))
    tok = _word_tokenizer(tmp_path / "words" / "tokenizer.json", 70_000)
    out = tmp_path / "prep"
    r = runner.invoke(app, ["data", "prepare", str(src), "-o", "field=content", "--tokenizer", str(tok.parent),
                            "--out", str(out), "--valid-fraction", "0.2", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    meta = json.loads(r.output)
    assert meta["dtype"] == "uint32" and meta["tokenizer"]["name"] == "json:words"
    assert meta["tokenizer"]["eos_token"] == "</s>" and meta["source"]["options"]["field"] == "content"
    assert meta["train"]["n_tokens"] + meta["valid"]["n_tokens"] == 50 * (41 + 1)  # words + eos per doc


def test_errors_name_what_to_fix(folder, tmp_path):
    cases = [
        (["data", "prepare", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], "no data source or file named"),
        (["data", "prepare", str(folder), "--tokenizer", str(tmp_path / "gpt2.json"), "--out", str(tmp_path / "o")],
         "tokenizer file not found"),
        (["data", "info", str(folder)], "not a prepared corpus"),
    ]
    for args, message in cases:
        r = runner.invoke(app, args)
        assert isinstance(r.exception, DataError) and message in str(r.exception)
    big = _word_tokenizer(tmp_path / "big.json", 70_000)
    r = subprocess.run([sys.executable, "-m", "scaling", "data", "prepare", str(folder), "--tokenizer", str(big),
                        "--dtype", "uint16", "--out", str(tmp_path / "o")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "70000 ids, more than uint16 holds (65536); use --dtype uint32" in r.stderr
    r = runner.invoke(app, ["data", "prepare", str(folder), "-o", "fieldcontent", "--out", str(tmp_path / "o")])
    assert "key=value" in str(r.exception)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_study_trains_on_a_prepared_corpus(folder, tmp_path):
    out = tmp_path / "corpus"
    r = runner.invoke(app, ["data", "prepare", str(folder), "--out", str(out), "--valid-fraction", "0.2"])
    assert r.exit_code == 0, r.output
    spec = tmp_path / "prep.toml"
    spec.write_text(f"""
[study]
name = "prep"
[data]
source = "prepared"
eval_tokens = 256
[data.options]
path = "{out.as_posix()}"
[model]
shapes = [{{d_model = 16, n_layers = 1, n_heads = 2}}]
[train]
steps = 30
batch_size = 4
seq_len = 32
eval_points = 2
""")
    r = runner.invoke(app, ["grid", "run", str(spec)])
    assert r.exit_code == 0, r.output
    runs = pd.read_parquet(tmp_path / "prep" / "runs.parquet")
    assert len(runs) == 1 and runs.status.iloc[0] == "done"
    curves = pd.read_parquet(tmp_path / "prep" / "curves.parquet")
    losses = curves[curves.eval_set == "valid"].sort_values("step").loss.to_numpy()
    assert losses[-1] < losses[0] - 0.5  # it learns the byte statistics of the prepared text
