"""The GPU check (issue 10, item 8): kernel correctness and cost, each family on CUDA, 125M throughput.

Sections run one after another, each in its own subprocess with its own time limit, and the
JSON file is rewritten after each, so a section that hangs or crashes costs only itself:

  kernel      linear_cross_entropy against the torch reference (fp32 and bf16: loss and grads),
              then time and peak extra memory at the Gemma-2 shape (N 8192, D 2304, V 256000) for
              ours, torch.compile'd F.cross_entropy(h @ w.T), cut_cross_entropy and liger_kernel
              (each where it imports)
  families    each family's tiny study end to end on CUDA (train, evals, BLEU, store)
  throughput  a 125M-parameter decoder at sequence length 1024, bf16 autocast: tokens/s and MFU
              against bf16 peak (datasheet 989 TFLOP/s and a measured 8192³ matmul), with and
              without torch.compile

    python bench/gpu_check.py --out gpu_check.json            # on a CUDA machine
    python bench/gpu_check.py --dry-run --out /tmp/check.json # anywhere: tiny shapes on the CPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GEMMA = (8192, 2304, 256000)
BF16_PEAK_DATASHEET = 989e12  # H100/H200 SXM dense bf16
SECTIONS = {"kernel": 150, "families": 120, "throughput": 200}  # seconds each, 470 s in all


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _rel(a, b) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


# ---------------------------------------------------------------- kernel
def kernel(dry: bool) -> dict:
    import torch
    import torch.nn.functional as F

    from scaling.kernels import linear_cross_entropy, reference_linear_cross_entropy

    device = "cpu" if dry else "cuda"
    out: dict = {"correctness": [], "gemma": []}
    shape = (257, 64, 1000) if dry else (4099, 512, 32771)  # odd sizes: tiles that do not divide
    n, d, v = shape
    for dtype in ("float32", "bfloat16"):
        g = torch.Generator(device=device).manual_seed(0)
        h = torch.randn(n, d, device=device, generator=g).to(getattr(torch, dtype)).requires_grad_()
        w = (torch.randn(v, d, device=device, generator=g) * d**-0.5).to(getattr(torch, dtype)).requires_grad_()
        t = torch.randint(0, v, (n,), device=device, generator=g)
        t[::7] = -100
        results = {}
        for name, fn in (("ours", lambda: linear_cross_entropy(h, w, t)),
                         ("reference", lambda: reference_linear_cross_entropy(h.double(), w.double(), t))):
            h.grad = w.grad = None
            loss = fn()
            loss.backward()
            results[name] = (loss.detach(), h.grad.clone(), w.grad.clone())
        ours, ref = results["ours"], results["reference"]
        tol = {"float32": 1e-4, "bfloat16": 2e-2}[dtype]
        row = {"shape": list(shape), "dtype": dtype, "impl": "auto",
               "loss_rel_err": _rel(ours[0], ref[0]), "grad_hidden_rel_err": _rel(ours[1], ref[1]),
               "grad_weight_rel_err": _rel(ours[2], ref[2]), "tolerance": tol}
        row["ok"] = all(row[k] <= tol for k in ("loss_rel_err", "grad_hidden_rel_err", "grad_weight_rel_err"))
        out["correctness"].append(row)

    n, d, v = (512, 64, 4096) if dry else GEMMA
    impls = {"ours": lambda h, w, t: linear_cross_entropy(h, w, t),
             "torch-reference": lambda h, w, t: F.cross_entropy((h @ w.T).float(), t)}
    compiled = torch.compile(lambda h, w, t: F.cross_entropy((h @ w.T).float(), t))
    impls["torch.compile-fused-CE"] = compiled
    try:
        from cut_cross_entropy import linear_cross_entropy as cce

        impls["cut_cross_entropy"] = lambda h, w, t: cce(h, w, t)
    except ImportError as e:
        out["cut_cross_entropy"] = f"not installed: {e}"
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy as liger

        impls["liger_kernel"] = lambda h, w, t: liger(h, w, t)
    except ImportError as e:
        out["liger_kernel"] = f"not installed: {e}"
    g = torch.Generator(device=device).manual_seed(1)
    h = torch.randn(n, d, device=device, generator=g).bfloat16().requires_grad_()
    w = (torch.randn(v, d, device=device, generator=g) * d**-0.5).bfloat16().requires_grad_()
    t = torch.randint(0, v, (n,), device=device, generator=g)
    ref_loss = None
    for name, fn in impls.items():
        try:
            times = []
            for i in range(1 if dry else 4):  # the first call compiles / autotunes
                h.grad = w.grad = None
                _sync(device)
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated() if device == "cuda" else 0
                t0 = time.perf_counter()
                loss = fn(h, w, t)
                loss.backward()
                _sync(device)
                times.append(time.perf_counter() - t0)
            peak = torch.cuda.max_memory_allocated() - base if device == "cuda" else None
            row = {"impl": name, "shape": [n, d, v], "dtype": "bfloat16", "fwd_bwd_ms": 1e3 * min(times[1:] or times),
                   "peak_extra_MiB": None if peak is None else peak / 2**20, "loss": float(loss)}
            if name == "torch-reference":
                ref_loss = float(loss)
        except Exception as e:  # one missing/broken competitor must not end the section
            row = {"impl": name, "error": f"{type(e).__name__}: {e}"[:300]}
        out["gemma"].append(row)
    for row in out["gemma"]:
        if ref_loss is not None and "loss" in row:
            row["loss_rel_err_vs_reference"] = abs(row["loss"] - ref_loss) / abs(ref_loss)
    return out


# ---------------------------------------------------------------- families
FAMILY_SPECS = {
    "decoder": """
[study]
name = "gpu-decoder"
[data]
source = "zipf_facts"
eval_tokens = 4096
[data.options]
n_symbols = 32
n_keys = 64
[model]
shapes = [{d_model = 64, n_layers = 2, n_heads = 4}]
[train]
steps = 60
batch_size = 16
seq_len = 64
eval_points = 4
""",
    "encdec": """
[study]
name = "gpu-encdec"
family = "encdec"
[data]
source = "transduction"
eval_tokens = 2048
[data.options]
n_words = 30
min_len = 2
max_len = 8
[model]
shapes = [{d_model = 64, enc_layers = 2, dec_layers = 2, n_heads = 4}]
[train]
steps = 60
batch_size = 16
eval_points = 4
micro_batch_size = 8
[encdec]
bleu_pairs = 64
""",
    "cpt": """
[study]
name = "gpu-cpt"
family = "cpt"
[data]
source = "stdlib_docs"
eval_tokens = 4096
[model]
shapes = [{d_model = 64, n_layers = 2, n_heads = 4}]
[train]
steps = 40
batch_size = 16
seq_len = 64
eval_points = 3
[cpt]
domain = {kind = "stdlib_code"}
domain_shares = [0.0, 0.5]
tokens = [20000]
""",
}


def families(dry: bool) -> dict:
    from scaling.config import spec_from_dict
    from scaling.store import Store
    from scaling.train import InProcessExecutor, expand, run_study

    import tomllib

    out = {}
    for name, text in FAMILY_SPECS.items():
        raw = tomllib.loads(text)
        if dry:
            raw["train"]["steps"] = 3
            raw["train"]["device"] = "cpu"
        t0 = time.perf_counter()
        try:
            runs = expand(spec_from_dict(raw))
            with tempfile.TemporaryDirectory() as tmp:
                store = Store(tmp)
                counts = run_study(runs, store, InProcessExecutor())
                df = store.runs()
                cols = [c for c in ("status", "loss", "bayes_loss", "tokens_per_s", "error") if c in df]
                cols += [c for c in df.columns if c.startswith("bleu_")]
                out[name] = {"counts": counts, "rows": json.loads(df[cols].to_json(orient="records")),
                             "wall_s": time.perf_counter() - t0, "ok": counts == {"done": len(runs)}}
        except Exception as e:
            out[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:500]}
    return out


# ---------------------------------------------------------------- throughput
def throughput(dry: bool) -> dict:
    import torch

    from scaling.kernels import linear_cross_entropy
    from scaling.model import DecoderConfig, DecoderLM, count_params, flops_per_token
    from scaling.train.placement import enable_fast_matmul

    device = torch.device("cpu" if dry else "cuda")
    enable_fast_matmul(device)
    if dry:
        cfg, batch, steps = DecoderConfig(256, 32, 2, 2, max_seq_len=32), 2, 2
    else:  # GPT-2 small: 124M with the 50304-row head
        cfg, batch, steps = DecoderConfig(50304, 768, 12, 12, max_seq_len=1024), 16, 10
    T = cfg.max_seq_len
    fpt = flops_per_token(cfg, T)
    out = {"params": count_params(cfg).total, "seq_len": T, "batch": batch, "flops_per_token": fpt}
    if not dry:
        a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
        for _ in range(3):
            a @ a
        _sync("cuda")
        t0 = time.perf_counter()
        for _ in range(10):
            a @ a
        _sync("cuda")
        out["bf16_matmul_flops_per_s"] = 10 * 2 * 8192**3 / (time.perf_counter() - t0)
        del a
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    for compiled in (False, True):
        torch.manual_seed(0)
        model = DecoderLM(cfg).to(device)
        fwd = torch.compile(model) if compiled else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
        x = torch.randint(0, cfg.vocab_size, (batch, T + 1), device=device)
        idx, tgt = x[:, :-1], x[:, 1:]

        def step():
            with autocast:
                hidden = fwd(idx)
                loss = linear_cross_entropy(hidden.flatten(0, 1), model.head.weight, tgt.flatten(),
                                            check_targets=False)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss

        t0 = time.perf_counter()
        for _ in range(1 if dry else 3):
            step()
        _sync(device.type)
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step()
        _sync(device.type)
        dt = (time.perf_counter() - t0) / steps
        tps = batch * T / dt
        key = "compiled" if compiled else "eager"
        out[key] = {"tokens_per_s": tps, "step_ms": 1e3 * dt, "warmup_s": warm, "loss": float(loss),
                    "mfu_vs_datasheet_bf16": tps * fpt / BF16_PEAK_DATASHEET}
        if "bf16_matmul_flops_per_s" in out:
            out[key]["mfu_vs_measured_matmul"] = tps * fpt / out["bf16_matmul_flops_per_s"]
        if device.type == "cuda":
            out[key]["peak_memory_GiB"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        del model, fwd, opt
    out["compile_speedup"] = out["compiled"]["tokens_per_s"] / out["eager"]["tokens_per_s"]
    return out


# ---------------------------------------------------------------- driver
def _write(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="JSON file of the figures")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU: checks the script, not the GPU")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--section", help=argparse.SUPPRESS)  # run one section in this process
    args = p.parse_args(argv)
    if args.section:
        result = {"kernel": kernel, "families": families, "throughput": throughput}[args.section](args.dry_run)
        print(json.dumps(result, default=str))
        return 0
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section {unknown[0]!r}; expected some of {', '.join(SECTIONS)}")
    import torch

    report: dict = {"dry_run": args.dry_run, "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                    "sections": {}}
    if not args.dry_run and not torch.cuda.is_available():
        report["error"] = "no CUDA device: run with --dry-run to check the script on a CPU"
        _write(args.out, report)
        print(report["error"], file=sys.stderr)
        return 2
    for name in wanted:
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "--section", name] + (["--dry-run"] if args.dry_run else [])
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SECTIONS[name])
            if proc.returncode == 0:
                result = json.loads(proc.stdout.strip().splitlines()[-1])
            else:
                result = {"error": proc.stderr.strip()[-2000:]}
        except subprocess.TimeoutExpired:
            result = {"error": f"timed out after {SECTIONS[name]} s"}
        result["section_wall_s"] = time.perf_counter() - t0
        report["sections"][name] = result
        _write(args.out, report)
        print(f"{name}: {'error' if 'error' in result else 'ok'} in {result['section_wall_s']:.0f} s", flush=True)
    return 0 if all("error" not in r for r in report["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
