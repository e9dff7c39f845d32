"""Benchmark linear + cross-entropy implementations: forward+backward time and peak extra memory.

Each measurement is one forward+backward step in a fresh subprocess so that its peak memory
is its own: on CPU, peak extra = peak RSS (ru_maxrss) at the end minus RSS once the inputs
exist; on GPU, torch.cuda.max_memory_allocated minus the allocation before the step. The
implementations take turns for `--repeats` rounds and each keeps its best wall time (and
its CPU time, less sensitive to other load on a shared machine). Ratios are against the
torch reference (which materialises the logits) measured in the same run.

    python bench/cce.py            # table
    python bench/cce.py --json     # one JSON object
    python bench/cce.py --cpu-shape 2048,64,16384 --small-rounds 2 --repeats 1   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CPU_SHAPES = [(8192, 512, 32768)]
GPU_SHAPES = [(8192, 512, 32768), (8192, 2304, 256000)]
# what the trainer sees; the last one is past the unchunked shortcut (see chunked.SMALL_BYTES)
SMALL_SHAPES = [(2048, 64, 64), (2048, 64, 256), (2048, 64, 512), (2048, 64, 4096)]
MiB = 2**20


# ---------------------------------------------------------------- implementations (in worker)
def make_step(name: str, device: str):
    """A function (hidden, weight, targets) -> loss for `name`, or None where unavailable."""
    import torch
    import torch.nn.functional as F

    from scaling.kernels import linear_cross_entropy

    if name == "ours":
        return lambda h, w, t: linear_cross_entropy(h, w, t)
    if name == "ours-chunked":
        return lambda h, w, t: linear_cross_entropy(h, w, t, impl="chunked")
    if name == "torch-reference":
        return lambda h, w, t: linear_cross_entropy(h, w, t, impl="torch")
    if name == "torch-F.linear_cross_entropy-chunked":
        if not hasattr(F, "linear_cross_entropy") or not hasattr(torch.nn, "LinearCrossEntropyOptions"):
            return None
        opts = torch.nn.LinearCrossEntropyOptions()
        return lambda h, w, t: F.linear_cross_entropy(h, w, t, options=opts)
    if name == "cut_cross_entropy":
        try:
            from cut_cross_entropy import linear_cross_entropy as cce
        except ImportError:
            return None
        return (lambda h, w, t: cce(h, w, t)) if device == "cuda" else None
    if name == "liger_kernel":
        try:
            from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy as liger
        except ImportError:
            return None
        return (lambda h, w, t: liger(h, w, t)) if device == "cuda" else None
    raise ValueError(f"unknown implementation {name!r}")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(spec: dict) -> dict:
    """Run one implementation at one shape; return its time and peak extra memory."""
    import torch

    n, d, v = spec["shape"]
    device, dtype = spec["device"], getattr(torch, spec["dtype"])
    step = make_step(spec["impl"], device)
    if step is None:
        return {"available": False}
    torch.manual_seed(0)
    # created in place so no temporary raises the RSS peak before the baseline is taken
    h = torch.randn(n, d, device=device).to(dtype).requires_grad_()
    w = torch.randn(v, d, device=device).mul_(d**-0.5).to(dtype).requires_grad_()
    t = torch.randint(0, v, (n,), device=device)
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _rss_bytes()
    times, cpu_times = [], []
    for _ in range(spec["steps"]):
        h.grad = w.grad = None
        if cuda:
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step(h, w, t)
        loss.backward()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"available": True, "time_s": min(times), "cpu_time_s": min(cpu_times),
            "peak_extra_bytes": int(peak), "loss": float(loss.detach())}


# ---------------------------------------------------------------- driver
def run_isolated(impl: str, shape, device: str, dtype: str, steps: int = 1) -> dict:
    spec = dict(impl=impl, shape=list(shape), device=device, dtype=dtype, steps=steps)
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return {"available": False, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _best(old: dict | None, new: dict) -> dict:
    """Merge two measurements: best times, largest peak memory."""
    if old is None or not old.get("available"):
        return new
    if not new.get("available"):
        return old
    return old | {"time_s": min(old["time_s"], new["time_s"]),
                  "cpu_time_s": min(old["cpu_time_s"], new["cpu_time_s"]),
                  "peak_extra_bytes": max(old["peak_extra_bytes"], new["peak_extra_bytes"])}


def small_shapes(rounds: int) -> list[dict]:
    """In-process, interleaved timing at the trainer's tiny shapes (ours vs reference)."""
    import torch

    from scaling.kernels import linear_cross_entropy

    out = []
    for n, d, v in SMALL_SHAPES:
        g = torch.Generator().manual_seed(0)
        h = torch.randn(n, d, generator=g).requires_grad_()
        w = torch.randn(v, d, generator=g).requires_grad_()
        t = torch.randint(0, v, (n,), generator=g)
        best = {"chunked": float("inf"), "torch": float("inf")}
        for _ in range(rounds):
            for impl in best:
                t0 = time.perf_counter()
                linear_cross_entropy(h, w, t, impl=impl).backward()
                best[impl] = min(best[impl], time.perf_counter() - t0)
        out.append({"shape": [n, d, v], "ours_ms": best["chunked"] * 1e3,
                    "reference_ms": best["torch"] * 1e3,
                    "time_ratio": best["chunked"] / best["torch"]})
    return out


def _shape(text: str) -> tuple[int, int, int]:
    try:
        n, d, v = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is N,D,V (three integers), got {text!r}") from None
    return n, d, v


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeats", type=int, default=2, help="rounds of one step per implementation")
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU shapes even where CUDA exists")
    p.add_argument("--cpu-shape", action="append", type=_shape, metavar="N,D,V",
                   help=f"a CPU shape (tokens, hidden, vocabulary) instead of {CPU_SHAPES}; repeatable")
    p.add_argument("--small-rounds", type=int, help="interleaved steps at the trainer's shapes "
                   "(default max(50, 10 x repeats))")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    import torch

    runs = [("cpu", "float32", s) for s in (args.cpu_shape or CPU_SHAPES)]
    if torch.cuda.is_available() and not args.no_gpu:
        runs += [("cuda", "bfloat16", s) for s in GPU_SHAPES]
    impls = ["torch-reference", "ours", "ours-chunked", "torch-F.linear_cross_entropy-chunked",
             "cut_cross_entropy", "liger_kernel"]
    rows, checks = [], {}
    for device, dtype, shape in runs:
        res: dict[str, dict] = {}
        for _ in range(args.repeats):  # rounds, so a burst of other load hits every impl alike
            for impl in impls:
                if impl == "ours-chunked" and device == "cpu":
                    continue  # "ours" is already the chunked path on CPU
                r = run_isolated(impl, shape, device, dtype)
                res[impl] = _best(res.get(impl), r)
        ref = res["torch-reference"]
        for impl, r in res.items():
            row = dict(device=device, dtype=dtype, shape=list(shape), impl=impl, **r)
            if r.get("available") and ref.get("available"):
                row["time_ratio_vs_reference"] = r["time_s"] / ref["time_s"]
                row["cpu_time_ratio_vs_reference"] = r["cpu_time_s"] / ref["cpu_time_s"]
                row["memory_ratio_vs_reference"] = r["peak_extra_bytes"] / max(ref["peak_extra_bytes"], 1)
            rows.append(row)
        ours, tch = res["ours"], res["torch-F.linear_cross_entropy-chunked"]
        if device == "cpu" and ours.get("available") and ref.get("available"):
            checks[f"cpu {shape}"] = {
                "memory_at_most_1/15_of_reference": ours["peak_extra_bytes"] * 15 <= ref["peak_extra_bytes"],
                "memory_at_most_torch_chunked": (not tch.get("available"))
                or ours["peak_extra_bytes"] <= tch["peak_extra_bytes"],
                "time_at_most_1.0x_reference": ours["time_s"] <= ref["time_s"],
            }
    small = small_shapes(args.small_rounds or max(50, 10 * args.repeats))
    result = {"runs": rows, "small_shapes_cpu": small, "checks": checks,
              "repeats": args.repeats, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'device':6} {'dtype':9} {'shape (N,D,V)':20} {'implementation':38} {'fwd+bwd s':>9} "
          f"{'cpu s':>7} {'peak extra MiB':>14} {'time/ref':>8} {'cpu/ref':>8} {'mem/ref':>8}")
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        if not r.get("available"):
            print(f"{r['device']:6} {r['dtype']:9} {shape:20} {r['impl']:38} {'not available':>9}")
            continue
        print(f"{r['device']:6} {r['dtype']:9} {shape:20} {r['impl']:38} {r['time_s']:9.3f} "
              f"{r['cpu_time_s']:7.2f} {r['peak_extra_bytes'] / MiB:14.1f} "
              f"{r.get('time_ratio_vs_reference', 0):8.3f} {r.get('cpu_time_ratio_vs_reference', 0):8.3f} "
              f"{r.get('memory_ratio_vs_reference', 0):8.4f}")
    print("\ntrainer-sized shapes on CPU (best of interleaved steps):")
    for s in small:
        print(f"  {s['shape']}: ours {s['ours_ms']:.3f} ms, reference {s['reference_ms']:.3f} ms, "
              f"ratio {s['time_ratio']:.3f}")
    for name, c in checks.items():
        print(f"\nchecks {name}: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in c.items()))


if __name__ == "__main__":
    main()
