"""Per-width encoder learning rate: `enc_lr_width` scales the encoder's groups, the trainer applies it."""

import pytest

from scaling.errors import SpecError
from scaling.model.encdec import EncDecConfig, EncoderDecoder, count_params_encdec
from scaling.train.optim import make_optimizer

TRAIN = {"lr": 1e-2, "weight_decay": 0.1}


def model(**kw) -> EncoderDecoder:
    return EncoderDecoder(EncDecConfig(vocab_size=20, d_model=16, n_heads=2, enc_layers=1, dec_layers=1,
                                       max_src_len=8, max_tgt_len=8, **kw))


def test_default_is_one_learning_rate_for_all():
    m = model(enc_d_model=64)
    groups = make_optimizer(m, TRAIN).param_groups
    assert [g["lr_scale"] for g in groups] == [1.0, 1.0]
    assert sum(p.numel() for g in groups for p in g["params"]) == count_params_encdec(m.cfg).total


def test_wide_encoder_trains_at_width_scaled_lr():
    m = model(enc_d_model=64, enc_lr_width=16)
    groups = make_optimizer(m, TRAIN).param_groups
    # muP: only the matrices whose fan-in is the encoder width (its blocks' and the memory projection)
    enc_ids = {id(p) for n, p in m.named_parameters()
               if (n.startswith("enc_blocks.") and p.dim() == 2) or n.startswith("mem_proj.")}
    assert len(enc_ids) == 5  # fused qkv and the attention output, two MLP matrices, mem_proj
    assert not enc_ids & {id(m.src_wte.weight), id(m.src_wpe.weight), id(m.enc_ln.weight)}
    for g in (g for g in groups if g["params"]):  # the scaled matrices leave an empty no-decay group
        ids = {id(p) for p in g["params"]}
        assert ids <= enc_ids if g["lr_scale"] == 0.25 else not ids & enc_ids
        assert g["weight_decay"] == (0.1 if all(p.dim() >= 2 for p in g["params"]) else 0.0)
    assert sorted({g["lr_scale"] for g in groups}) == [0.25, 1.0]
    assert sum(p.numel() for g in groups for p in g["params"]) == count_params_encdec(m.cfg).total
    # a narrow encoder is never sped up past the base rate
    assert [s for _, s in model(enc_d_model=8, enc_lr_width=16).lr_scales()] == [1.0]


def test_trainer_multiplies_the_schedule_by_the_scale(tmp_path):
    from scaling.train.optim import lr_at

    m = model(enc_d_model=32, enc_lr_width=16)
    opt = make_optimizer(m, TRAIN)
    train = {"lr": 1e-2, "schedule": "constant", "warmup": 0}
    for g in opt.param_groups:  # what the loop does at each step
        g["lr"] = lr_at(3, 10, train) * g.get("lr_scale", 1.0)
    assert sorted({round(g["lr"], 12) for g in opt.param_groups}) == [5e-3, 1e-2]


def test_bad_width_names_the_field():
    with pytest.raises(SpecError, match="enc_lr_width"):
        model(enc_lr_width=0)
