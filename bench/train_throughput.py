"""Training throughput of `DecoderLM` against a stock `nn.TransformerEncoderLayer` stack.

Both models have the same shapes (embedding, learned positions, pre-norm GELU blocks, final
LayerNorm, untied head), train with AdamW on the same random batches, and are timed in
alternating rounds so machine drift hits both alike; figures are medians over rounds. MFU is
measured against this machine's fp32 GEMM rate, timed in the same run. With compile on
(the default, first shape only: inductor takes a minute or two per shape on a small CPU), a
third contender is ours under `torch.compile` (the forward, as `[train] compile = true` does),
reported as the compile on/off ratio.

    python bench/train_throughput.py            # table
    python bench/train_throughput.py --json     # one JSON object
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from scaling.kernels import linear_cross_entropy
from scaling.model import DecoderConfig, DecoderLM, count_params, flops_per_token, init_weights

SHAPES = [  # (d_model, n_layers, n_heads, seq_len, batch)
    (128, 4, 4, 128, 32),
    (256, 4, 4, 256, 16),
]
VOCAB = 256


class StockLM(nn.Module):
    """The same model built from `nn.TransformerEncoderLayer` with a causal mask."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.wte = nn.Embedding(cfg.vocab_size, d)
        self.wpe = nn.Embedding(cfg.max_seq_len, d)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d, cfg.n_heads, cfg.d_ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(cfg.n_layers)
        )
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size, bias=False)
        init_weights(self, n_residual=2 * cfg.n_layers)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(cfg.max_seq_len))

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        mask = self.mask[:T, :T]
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def gemm_flops_per_s(n: int = 2048, reps: int = 10) -> float:
    """fp32 FLOP/s of an n×n @ n×n matmul, best of `reps` (the machine's rate when it is not
    shared with other load), with torch's default thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times)


def make_step(model: nn.Module, loss_fn):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(idx: torch.Tensor, targets: torch.Tensor) -> float:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(idx, targets)
        loss.backward()
        opt.step()
        return loss.item()  # forces completion

    return step


def compiled_loss(model: DecoderLM):
    """The training loop's path with `[train] compile = true`: compiled forward, loss kernel outside."""
    forward = torch.compile(model)
    return lambda idx, t: linear_cross_entropy(forward(idx).flatten(0, 1), model.head.weight, t.flatten())


def bench_shape(d_model, n_layers, n_heads, seq_len, batch, *, rounds, steps, warmup, peak, compile=False) -> dict:
    cfg = DecoderConfig(VOCAB, d_model, n_layers, n_heads, max_seq_len=seq_len)
    torch.manual_seed(0)
    ours, stock = DecoderLM(cfg), StockLM(cfg)
    assert sum(p.numel() for p in stock.parameters()) == count_params(cfg).total  # same model size
    steps_by_name = {"ours": make_step(ours, ours.loss), "stock": make_step(stock, stock.loss)}
    if compile:
        torch.manual_seed(0)
        ours_c = DecoderLM(cfg)
        steps_by_name["ours_compiled"] = make_step(ours_c, compiled_loss(ours_c))
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, VOCAB, (batch, seq_len + 1), generator=g) for _ in range(4)]
    batches = [(b[:, :-1].contiguous(), b[:, 1:].contiguous()) for b in batches]
    for step in steps_by_name.values():
        for i in range(warmup):
            step(*batches[i % len(batches)])
    # Alternate the models step by step, so each pair of steps sees the same machine load
    # (this 2-core box is shared); the per-round ratio is the robust figure.
    wall: dict[str, list[float]] = {name: [] for name in steps_by_name}
    cpu: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for r in range(rounds):
        order = list(steps_by_name) if r % 2 == 0 else list(reversed(steps_by_name))
        idx, tgt = batches[r % len(batches)]
        for name in order:
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                steps_by_name[name](idx, tgt)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    tokens = steps * batch * seq_len
    fpt = flops_per_token(cfg, seq_len)
    out = {
        "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "seq_len": seq_len, "batch": batch,
        "params": count_params(cfg).total, "flops_per_token": fpt,
    }
    for name, ts in wall.items():
        tps = tokens / statistics.median(ts)
        out[f"{name}_tokens_per_s"] = tps
        out[f"{name}_mfu"] = tps * fpt / peak
    if compile:
        out["compile_ratio_on_over_off"] = statistics.median(a / b for a, b in zip(wall["ours"], wall["ours_compiled"]))
    out["round_ratios"] = [b / a for a, b in zip(wall["ours"], wall["stock"])]
    out["ratio_ours_over_stock"] = statistics.median(out["round_ratios"])
    # CPU seconds used by this process: less sensitive to other processes on the machine.
    out["cpu_ratio_ours_over_stock"] = statistics.median(b / a for a, b in zip(cpu["ours"], cpu["stock"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--rounds", type=int, default=11, help="timed rounds (one turn of each model)")
    ap.add_argument("--steps", type=int, default=1, help="training steps per model per round")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--compile", choices=["first", "all", "none"], default="first",
                    help="shapes that also time ours under torch.compile")
    args = ap.parse_args()
    peak = gemm_flops_per_s()
    results = [
        bench_shape(*s, rounds=args.rounds, steps=args.steps, warmup=args.warmup, peak=peak,
                    compile=args.compile == "all" or (args.compile == "first" and i == 0))
        for i, s in enumerate(SHAPES)
    ]
    summary = {
        "threads": torch.get_num_threads(),
        "gemm_fp32_flops_per_s": peak,
        "shapes": results,
        "min_ratio_ours_over_stock": min(r["ratio_ours_over_stock"] for r in results),
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"fp32 GEMM 2048³: {peak / 1e9:.1f} GFLOP/s ({summary['threads']} threads)")
    print(
        f"{'d_model':>7} {'L':>2} {'T':>4} {'B':>3} {'params':>9} {'ours tok/s':>11} {'stock tok/s':>12} "
        f"{'ours MFU':>9} {'stock MFU':>10} {'ratio':>6} {'cpu ratio':>9}"
    )
    for r in results:
        print(
            f"{r['d_model']:>7} {r['n_layers']:>2} {r['seq_len']:>4} {r['batch']:>3} {r['params']:>9,} "
            f"{r['ours_tokens_per_s']:>11,.0f} {r['stock_tokens_per_s']:>12,.0f} "
            f"{r['ours_mfu']:>9.1%} {r['stock_mfu']:>10.1%} {r['ratio_ours_over_stock']:>6.3f} "
            f"{r['cpu_ratio_ours_over_stock']:>9.3f}"
        )
    for r in results:
        if "compile_ratio_on_over_off" in r:
            print(f"compile on/off (d_model {r['d_model']}): {r['compile_ratio_on_over_off']:.3f} "
                  f"(ours_compiled {r['ours_compiled_tokens_per_s']:,.0f} tok/s; > 1 means compiled is faster)")
    print("ratio: median over rounds of stock/ours step time (wall clock); cpu ratio: the same in "
          "process CPU time. MFU counts full (non-causal) attention FLOPs.")

if __name__ == "__main__":
    main()
