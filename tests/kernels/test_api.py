"""Input validation and dispatch of `linear_cross_entropy`."""

from __future__ import annotations

import os

import pytest
import torch

from scaling.errors import ScalingError
from scaling.kernels import KernelInputError, linear_cross_entropy


def ok_inputs(n=10, d=8, v=13):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.randn(v, d, generator=g), torch.randint(0, v, (n,), generator=g)


def test_error_is_a_scaling_error_and_a_value_error():
    assert issubclass(KernelInputError, ScalingError) and issubclass(KernelInputError, ValueError)


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda h, w, t: (h[:, :5], w, t), "`hidden`"),
        (lambda h, w, t: (h, w[None], t), "`weight`"),
        (lambda h, w, t: (h, w, t[:-1]), "`targets`"),
        (lambda h, w, t: (h.double(), w.double(), t), "`hidden` dtype"),
        (lambda h, w, t: (h, w.half(), t), "`weight` dtype"),
        (lambda h, w, t: (h, w, t.float()), "`targets`"),
        (lambda h, w, t: (h, w, torch.where(t == t[0], 13, t)), "`targets` must lie in [0, 13)"),
        (lambda h, w, t: (h, w, torch.where(t == t[0], -1, t)), "found -1"),
        (lambda h, w, t: (h, w.to("meta"), t), "same device"),
    ],
)
def test_bad_tensors_name_the_argument(change, needle):
    h, w, t = change(*ok_inputs())
    with pytest.raises(KernelInputError) as info:
        linear_cross_entropy(h, w, t)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(reduction="avg"), "`reduction`"),
        (dict(impl="cuda"), "`impl`"),
        (dict(softcap=0.0), "`softcap`"),
        (dict(bias=torch.zeros(12)), "`bias`"),
        (dict(bias=torch.zeros(13, dtype=torch.float64)), "`bias`"),
        (dict(filter_eps=1e-4, impl="chunked"), "`filter_eps`"),
    ],
)
def test_bad_options_name_the_argument(kwargs, needle):
    h, w, t = ok_inputs()
    with pytest.raises(KernelInputError) as info:
        linear_cross_entropy(h, w, t, **kwargs)
    assert needle in str(info.value)


@pytest.mark.skipif(
    torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1",
    reason="only without CUDA and without the interpreter",
)
def test_triton_on_cpu_tensors_says_what_to_use_instead():
    h, w, t = ok_inputs()
    with pytest.raises(KernelInputError, match="impl='chunked'"):
        linear_cross_entropy(h, w, t, impl="triton")


def test_ignore_index_outside_the_vocabulary_is_accepted():
    h, w, t = ok_inputs()
    t[1] = 999
    loss = linear_cross_entropy(h, w, t, ignore_index=999, reduction="none")
    ref = torch.nn.functional.cross_entropy(h @ w.T, t, ignore_index=999, reduction="none")
    assert loss[1] == 0
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    t[0] = -100  # no longer the ignore_index, so out of range
    with pytest.raises(KernelInputError, match="found -100"):
        linear_cross_entropy(h, w, t, ignore_index=999)


def test_default_ignore_index_is_minus_100():
    h, w, t = ok_inputs()
    t[0] = -100
    per = linear_cross_entropy(h, w, t, reduction="none")
    assert per[0] == 0
    ref = torch.nn.functional.cross_entropy(h @ w.T, t, reduction="none")
    torch.testing.assert_close(per, ref, rtol=1e-5, atol=1e-5)
