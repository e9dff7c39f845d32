"""Data loading speed of every LM source against one training step of a small model.

For each source: build time, then µs per `train_batch(step, B, T, seed)` (median over rounds of
fresh steps) and batches/s. The baseline, measured in the same run, is one forward + backward
+ AdamW step of a 2-layer `nn.TransformerEncoder` (d=128, causal) with embedding and head on a
batch of the same shape; `ratio` = batch time / step time (well below 1 means loading is not
the bottleneck). The step runs on 1 torch thread by default (--threads), like the loader:
oversubscribed threads on a shared machine distort it badly. Text corpora are tokenized once
and cached, so a second run builds faster.

`prepared` is a prepared (memmap) corpus of --prepared-mb MB of tokens (default 100), made in a
temporary folder by `prepare_corpus` from the stdlib's code repeated (byte tokens as uint16,
documents renamed per round so the split stays by document); its build time is the prepare time
and it also reports the heap peak (tracemalloc) and the resident-set growth while reading
batches. The file was just written, so its pages are in the page cache (a warm read).

    python bench/data_loading.py            # table
    python bench/data_loading.py --json     # one JSON object
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from scaling.data import build_source

SOURCES = {  # name -> (kind, options)
    "zipf_facts": ("zipf_facts", {}),
    "markov": ("markov", {}),
    "mixture(zipf+zipf)": ("mixture", {"domain_share": 0.3}),
    "stdlib_code": ("stdlib_code", {}),
    "stdlib_docs": ("stdlib_docs", {}),
    "prepared": ("prepared", {}),  # built by build_prepared below
}


def build_prepared(folder: Path, megabytes: float):
    """A prepared corpus of about `megabytes` MB of uint16 tokens from repeated stdlib code."""
    from scaling.data.corpora import stdlib_code_documents
    from scaling.data.documents import DocumentStream
    from scaling.data.prepare import prepare_corpus

    target = int(megabytes * 1e6) // 2  # text bytes = byte tokens, 2 bytes each on disk

    def docs():
        base, total, k = stdlib_code_documents(), 0, 0
        while total < target:
            for doc_id, text in base:
                yield f"{k}/{doc_id}", text
                total += len(text.encode())
            k += 1

    stream = DocumentStream("stdlib_code_repeated", {"megabytes": megabytes}, f"bench-{megabytes}", docs)
    return prepare_corpus(stream, folder / "corpus", max_bytes=target, valid_fraction=0.01)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:  # Linux: resident pages, file-backed ones included
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_while_reading(src, batch_size: int, seq_len: int, n: int) -> dict[str, float]:
    rss0 = _rss_bytes()
    tracemalloc.start()
    for step in range(10_000, 10_000 + n):
        src.train_batch(step, batch_size, seq_len, seed=1)
    heap = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"heap_peak_mb": heap / 1e6, "rss_growth_mb": (_rss_bytes() - rss0) / 1e6}


class SmallLM(nn.Module):
    def __init__(self, vocab: int, seq_len: int, d: int = 128, n_layers: int = 2, n_heads: int = 4) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(seq_len, d)
        layer = nn.TransformerEncoderLayer(d, n_heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab, bias=False)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq_len))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        h = self.wte(x) + self.wpe.weight[:T]  # (b, t, d)
        return self.head(self.blocks(h, mask=self.mask[:T, :T], is_causal=True))


def time_step(vocab: int, batch_size: int, seq_len: int, rounds: int) -> float:
    model = SmallLM(vocab, seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab, (batch_size, seq_len))
    times = []
    for i in range(rounds + 3):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x).flatten(0, 1), x.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:  # warm-up rounds excluded
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_source(src, batch_size: int, seq_len: int, rounds: int) -> float:
    src.train_batch(0, batch_size, seq_len, seed=0)
    times = []
    for step in range(1, rounds + 1):
        t0 = time.perf_counter()
        src.train_batch(step, batch_size, seq_len, seed=0)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--sources", nargs="*", default=list(SOURCES), choices=list(SOURCES))
    ap.add_argument("--prepared-mb", type=float, default=100.0, help="size of the prepared corpus's token file")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the baseline step (data is 1 thread)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = []
    tmp = tempfile.TemporaryDirectory(prefix="scaling-bench-")
    for name in args.sources:
        kind, opts = SOURCES[name]
        extra = {}
        t0 = time.perf_counter()
        if name == "prepared":
            prepared = build_prepared(Path(tmp.name), args.prepared_mb)
            opts = {"path": str(prepared.path)}
            extra["prepare_s"] = time.perf_counter() - t0
        src = build_source(kind, opts)
        build_s = time.perf_counter() - t0
        batch_s = time_source(src, args.batch_size, args.seq_len, args.rounds)
        if name == "prepared":
            size = src.train_tokens.nbytes + src.valid_tokens.nbytes
            rate = prepared.meta["n_text_bytes"] / 1e6 / extra["prepare_s"]
            extra |= {"corpus_mb": size / 1e6, "prepare_mb_per_s": rate,
                      **memory_while_reading(src, args.batch_size, args.seq_len, args.rounds)}  # fmt: skip
        rows.append({"source": name, "vocab_size": src.vocab_size, "build_s": build_s, "batch_us": batch_s * 1e6,
                     **extra})  # fmt: skip
    tmp.cleanup()
    # Baseline timed after the sources, on the byte vocabulary (the largest here).
    step_s = time_step(256, args.batch_size, args.seq_len, max(10, args.rounds // 10))
    for r in rows:
        r["batches_per_s"] = 1e6 / r["batch_us"]
        r["tokens_per_s"] = r["batches_per_s"] * args.batch_size * args.seq_len
        r["ratio_to_train_step"] = r["batch_us"] / (step_s * 1e6)

    if args.json:
        print(json.dumps({"batch_size": args.batch_size, "seq_len": args.seq_len, "train_step_us": step_s * 1e6,
                          "threads": torch.get_num_threads(), "sources": rows}))  # fmt: skip
        return
    print(f"batch {args.batch_size}x{args.seq_len}; baseline: 2-layer TransformerEncoder d=128 fwd+bwd+AdamW "
          f"step = {step_s * 1e6:,.0f} µs ({torch.get_num_threads()} threads)")  # fmt: skip
    print(f"{'source':<20} {'vocab':>6} {'build s':>8} {'µs/batch':>9} {'batches/s':>10} {'Mtok/s':>7} {'÷ step':>8}")
    for r in rows:
        print(f"{r['source']:<20} {r['vocab_size']:>6} {r['build_s']:>8.2f} {r['batch_us']:>9.1f} "
              f"{r['batches_per_s']:>10,.0f} {r['tokens_per_s'] / 1e6:>7.2f} "
              f"{r['ratio_to_train_step']:>8.4f}")  # fmt: skip
    for r in rows:
        if "corpus_mb" in r:
            print(f"prepared: {r['corpus_mb']:.0f} MB of tokens, prepared in {r['prepare_s']:.1f} s "
                  f"({r['prepare_mb_per_s']:.1f} MB text/s); reading {args.rounds} batches: heap peak "
                  f"{r['heap_peak_mb']:.2f} MB, RSS +{r['rss_growth_mb']:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
