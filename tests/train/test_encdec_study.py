"""The example encoder/decoder study: its grid spans both sides, and keys data trains through the runner."""

from pathlib import Path

import numpy as np
import pytest

from scaling.config import load_spec
from scaling.store import Store
from scaling.train import InProcessExecutor, expand, run_study
from scaling.train.encdec_family import encdec_counts, pair_source

SPEC = Path(__file__).resolve().parents[2] / "runs" / "encdec-synthetic.toml"


def test_example_study_spans_encoder_and_decoder_sizes():
    runs = expand(load_spec(SPEC))
    assert len(runs) >= 9
    counts = [encdec_counts(r) for r in runs]
    ne = np.array([c["n_params_enc"] for c in counts])
    nd = np.array([c["n_params_dec"] for c in counts])
    assert ne.max() / ne.min() >= 4 and nd.max() / nd.min() >= 4
    # Encoder-only scaling (one decoder shape, several encoder shapes) and decoder-only scaling.
    m = [{**r.model} for r in runs]
    enc = [(x.get("enc_d_model"), x.get("enc_layers"), x.get("enc_d_ff")) for x in m]
    dec = [(x.get("d_model"), x.get("dec_layers"), x.get("d_ff")) for x in m]
    assert max(len({e for e, d in zip(enc, dec) if d == v}) for v in dec) >= 3
    assert max(len({d for e, d in zip(enc, dec) if e == v}) for v in enc) >= 3
    # Multi-symbol words over a small alphabet: the lexicon cannot sit in the embeddings.
    source = pair_source(runs[0].data)
    assert source.symbols_per_word >= 2 and source.vocab_size < 100 < source.n_words


@pytest.mark.slow
def test_keys_transduction_trains_through_the_runner(tmp_path: Path):
    spec = tmp_path / "k.toml"
    spec.write_text("""
[study]
name = "k"
family = "encdec"
[data]
source = "transduction"
eval_tokens = 260
[data.options]
n_words = 60
symbols_per_word = 2
n_symbols = 12
min_len = 2
max_len = 6
[model]
defaults = { n_heads = 2, enc_layers = 1, dec_layers = 1 }
shapes = [{ d_model = 16 }, { d_model = 16, enc_d_model = 32 }]
[train]
steps = 6
batch_size = 8
eval_points = 2
[encdec]
bleu_pairs = 8
""")
    runs = expand(load_spec(spec))
    store = Store(tmp_path / "k")
    assert run_study(runs, store, InProcessExecutor()) == {"done": 2}
    df = store.runs()
    source = pair_source(runs[0].data)
    bayes = source.eval_sets(20)["src_original"].bayes_loss  # 260 // 13 pairs
    assert np.allclose(df.bayes_loss, bayes)
    assert (df.loss > df.bayes_loss).all() and (df.loss < np.log(source.vocab_size) + 1).all()
    assert (df.n_params_enc.max() > df.n_params_enc.min()) and (df.n_params_dec.nunique() == 1)
