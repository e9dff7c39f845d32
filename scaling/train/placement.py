"""Which device and how many CPU threads each local worker (and each DDP rank) gets.

Workers of a local pool take slots 0..W-1 in the order they start. On a node with G GPUs,
slot s trains on GPU s mod G (round-robin); a run of K processes (DDP) in slot s takes the K
GPUs starting at s·K, wrapping around. `[train] device` other than "auto" always wins. CPU
threads are shared out among the workers whatever the device. Nothing here touches CUDA
state except `gpu_count` (which queries without initialising a context), so the logic is
tested with a fake count.
"""

from __future__ import annotations

import os

import torch
from torch.overrides import TorchFunctionMode

from scaling.errors import SpecError


def gpu_count() -> int:
    """CUDA devices visible to this process (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_gpus(slot: int, n_gpus: int, nproc: int = 1) -> list[int]:
    """GPU indices for the `nproc` processes of the run in worker `slot`, round-robin over `n_gpus`."""
    if slot < 0 or nproc < 1:
        raise ValueError(f"slot must be >= 0 and nproc >= 1, got slot={slot}, nproc={nproc}")
    if n_gpus < 1:
        return []
    return [(slot * nproc + r) % n_gpus for r in range(nproc)]


def requested_device(requested: str, n_gpus: int | None = None) -> torch.device:
    """A `[train] device` other than "auto", checked against this machine: a CUDA device must be
    there (torch's own error comes from deep inside the first step, as an AssertionError)."""
    try:
        device = torch.device(requested)
    except RuntimeError as e:
        raise SpecError(f"[train] `device` must be 'auto' or a torch device such as 'cpu' or 'cuda:0', "
                        f"got {requested!r} ({e})") from None
    if device.type == "cuda":
        n = gpu_count() if n_gpus is None else n_gpus
        if n == 0 or (device.index or 0) >= n:
            has = "no CUDA device" if n == 0 else f"{n} CUDA device(s), cuda:0 to cuda:{n - 1}"
            raise SpecError(f"[train] `device` = {requested!r}, but this machine has {has}; use 'auto' (a GPU where "
                            "there is one, else the CPU)" + (" or 'cpu'" if n == 0 else ""))
    return device


def place(requested: str, slot: int = 0, rank: int = 0, nproc: int = 1, n_gpus: int | None = None) -> torch.device:
    """Device for process `rank` of the run in worker `slot`.

    `requested` is `[train] device`: "auto" (a GPU by round-robin when there is one, else the
    CPU), or any torch device string ("cpu", "cuda", "cuda:3", ...), used as given; a bare
    "cuda" with several processes per run gives rank r its own "cuda:r".
    """
    if requested != "auto":
        device = requested_device(requested, n_gpus)
        if device.type == "cuda" and device.index is None and nproc > 1:
            return torch.device("cuda", rank)
        return device
    n = gpu_count() if n_gpus is None else n_gpus
    gpus = worker_gpus(slot, n, nproc)
    return torch.device("cuda", gpus[rank]) if gpus else torch.device("cpu")


def threads_per_worker(workers: int, cpu_count: int | None = None) -> int:
    """torch threads for each of `workers` processes sharing this machine's cores (at least 1)."""
    cores = (os.cpu_count() or 1) if cpu_count is None else cpu_count
    return max(1, cores // max(1, workers))


def enable_fast_matmul(device: torch.device) -> None:
    """TF32 tensor cores for fp32 matmuls and convolutions on CUDA (bf16 autocast covers the rest).

    fp32 matmuls then round their inputs to a 10-bit mantissa, which training at these scales
    does not notice; it leaves CPU arithmetic as it is.
    """
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True


# Host reads of a tensor's value: on the meta device (no data) they return placeholders
# (counts of 1 so that means over them stay finite).
_HOST_READS = {"__bool__": False, "item": 1, "__int__": 1, "__float__": 0.0, "__index__": 1}


class DeviceMismatch(AssertionError):
    """An operation mixed tensors of different devices inside `StrictDevices`."""


class StrictDevices(TorchFunctionMode):
    """Device-consistency check that needs no GPU: run model code with the model on `meta`.

    CUDA refuses an op whose tensors live on different devices, but `meta` (and the CPU) do
    not, so a tensor built on the CPU beside a model on the GPU is only found on a GPU node.
    Inside this mode any torch op whose tensor arguments span two devices raises
    `DeviceMismatch` (0-dim CPU tensors excepted, as CUDA allows them). Host reads of meta
    tensors (`bool`, `item`, `float`, `int`, `tolist`) return placeholders so that code which
    reads values (early stopping, BLEU) runs to the end. `ops` counts the ops seen.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        self.ops += 1
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and first.device.type == "meta":
            if name in _HOST_READS:
                return _HOST_READS[name]
            if name == "tolist":
                return torch.zeros(first.shape, dtype=first.dtype).tolist()
        devices = {t.device for t in _tensors(args, kwargs) if not (t.device.type == "cpu" and t.dim() == 0)}
        if len(devices) > 1 and name not in ("to", "copy_", "cuda", "cpu", "__set__", "__get__"):
            raise DeviceMismatch(f"torch op `{name}` got tensors on {sorted(map(str, devices))}")
        return func(*args, **kwargs)


def _tensors(args, kwargs):
    stack = [*args, *kwargs.values()]
    while stack:
        a = stack.pop()
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            stack.extend(a)


__all__ = ["DeviceMismatch", "StrictDevices", "enable_fast_matmul", "gpu_count", "place", "threads_per_worker", "worker_gpus"]
