"""CPU path: linear + cross-entropy in row chunks, never holding the (N, V) logits.

Forward keeps one (chunk, V) buffer and saves only the inputs and the per-token
log-sum-exp; backward recomputes each chunk's logits, turns them into the softmax gradient
in place and accumulates grad_hidden / grad_weight. Peak extra memory is about
chunk * V (two buffers with softcap) plus the V * D weight gradient.
"""

from __future__ import annotations

import torch

# Bytes of one (chunk, V) fp32 buffer: big enough for efficient matmuls, small enough to
# keep the extra memory far below the full logits.
CHUNK_BYTES = 32 * 2**20
# When all N x V logits fit in this many bytes, forward keeps the log-softmax for backward
# instead of recomputing the matmul: at such sizes recomputation costs more time than the
# one buffer (smaller than a chunk) costs memory.
KEEP_BYTES = 8 * 2**20


def chunk_rows(n_rows: int, vocab: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Rows per chunk so one fp32 (rows, V) buffer takes about `chunk_bytes`."""
    rows = max(16, chunk_bytes // (4 * max(vocab, 1)))
    return max(1, min(n_rows, rows))


def _logits_into(
    out: torch.Tensor, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """out = h @ weight.T (+ bias), written into a preallocated buffer."""
    if bias is None:
        return torch.mm(h, weight.t(), out=out)
    return torch.addmm(bias, h, weight.t(), out=out)


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Per-token loss and lse of `softcap(hidden @ weight.T + bias)`; grads by recomputation."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        hidden: torch.Tensor,  # (N, D)
        weight: torch.Tensor,  # (V, D)
        bias: torch.Tensor | None,  # (V,)
        targets: torch.Tensor,  # (N,)
        ignore_index: int,
        softcap: float | None,
        rows: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, vocab = hidden.shape[0], weight.shape[0]
        valid = targets != ignore_index
        safe_t = torch.where(valid, targets, 0).long()
        ctx.ignore_index, ctx.softcap, ctx.rows = ignore_index, softcap, rows
        ctx.keep = softcap is None and n * vocab * 4 <= KEEP_BYTES and any(ctx.needs_input_grad[:3])
        if ctx.keep:
            return _forward_keep(ctx, hidden, weight, bias, targets, valid, safe_t)
        lse = torch.empty(n, dtype=torch.float32, device=hidden.device)
        target_logit = torch.empty(n, dtype=torch.float32, device=hidden.device)
        buf = hidden.new_empty(min(rows, n), vocab)
        for s in range(0, n, rows):
            e = min(s + rows, n)
            z = _logits_into(buf[: e - s], hidden[s:e], weight, bias).float()
            if softcap is not None:
                z.div_(softcap).tanh_().mul_(softcap)
            torch.gather(z, 1, safe_t[s:e, None], out=target_logit[s:e, None])
            m = z.amax(dim=1, keepdim=True)
            # in-place exp(z - m) so no second (chunk, V) temporary is made
            torch.sum(z.sub_(m).exp_(), dim=1, out=lse[s:e])
            lse[s:e].log_().add_(m.squeeze(1))
        del buf
        loss = (lse - target_logit).masked_fill_(~valid, 0.0)
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        return loss, lse

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor | None, grad_lse: torch.Tensor | None):  # type: ignore[override]
        hidden, weight, bias, targets, saved = ctx.saved_tensors
        softcap, rows = ctx.softcap, ctx.rows
        n, vocab = hidden.shape[0], weight.shape[0]
        need = ctx.needs_input_grad[:3]
        valid = targets != ctx.ignore_index
        safe_t = torch.where(valid, targets, 0).long()
        # d loss_i / d z_ij = a_i * softmax_ij - b_i * [j == t_i], with the lse's own grad in a_i
        b = torch.zeros(n, dtype=torch.float32, device=hidden.device)
        if grad_loss is not None:
            b = grad_loss.float().masked_fill(~valid, 0.0)
        a = b if grad_lse is None else b + grad_lse.float()
        grads = _Grads(hidden, weight, need)
        if ctx.keep:  # `saved` is the log-softmax; left unmodified so double backward works
            grads.add_chunk(0, n, torch.exp(saved), safe_t, a, b)
            return (*grads.finish(bias), None, None, None, None)
        lse = saved
        buf = hidden.new_empty(min(rows, n), vocab)
        deriv_buf = torch.empty(buf.shape, dtype=torch.float32, device=buf.device) if softcap else None
        for s in range(0, n, rows):
            e = min(s + rows, n)
            q = _logits_into(buf[: e - s], hidden[s:e], weight, bias).float()
            c = b[s:e]
            if softcap is not None:
                t = q.div_(softcap).tanh_()
                deriv = torch.mul(t, t, out=deriv_buf[: e - s]).neg_().add_(1.0)  # 1 - tanh^2
                t.mul_(softcap)
                c = c * deriv.gather(1, safe_t[s:e, None]).squeeze(1)
            q.sub_(lse[s:e, None]).exp_()  # softmax, in place
            if softcap is not None:
                q.mul_(deriv)
            grads.add_chunk(s, e, q, safe_t[s:e], a[s:e], c)
        return (*grads.finish(bias), None, None, None, None)


class _Grads:
    """Accumulates grads of g = a_i * q_ij - c_i * [j == t_i] without forming g.

    The row scale a and the one-hot term are applied to (rows, D) and (V, D) operands
    instead of the (rows, V) tile, which saves two passes over the tile per chunk.
    """

    def __init__(self, hidden: torch.Tensor, weight: torch.Tensor, need: tuple[bool, ...]):
        self.hidden, self.weight = hidden, weight
        self.fp32 = hidden.dtype == torch.float32
        f32 = dict(dtype=torch.float32, device=hidden.device)
        self.grad_h = torch.empty_like(hidden) if need[0] else None
        self.grad_w = torch.zeros(weight.shape, **f32) if need[1] else None
        self.grad_b = torch.zeros(weight.shape[0], **f32) if need[2] else None

    def add_chunk(self, s: int, e: int, q: torch.Tensor, t: torch.Tensor, a: torch.Tensor,
                  c: torch.Tensor) -> None:
        """Add rows s:e; q (rows, V) fp32, t/a/c (rows,)."""
        h, w = self.hidden[s:e], self.weight
        if self.grad_h is not None:
            qc = q if self.fp32 else q.to(w.dtype)
            gh = torch.mm(qc, w, out=self.grad_h[s:e]) if self.fp32 else torch.mm(qc, w).float()
            gh.mul_(a[:, None]).addcmul_(w[t].float(), c[:, None], value=-1.0)
            if not self.fp32:
                self.grad_h[s:e].copy_(gh)
        if self.grad_w is not None:
            hf = h if self.fp32 else h.float()
            self.grad_w.addmm_(q.t(), hf * a[:, None])
            self.grad_w.index_add_(0, t, hf * c[:, None], alpha=-1.0)
        if self.grad_b is not None:
            self.grad_b.add_(torch.mv(q.t(), a)).index_add_(0, t, c, alpha=-1.0)

    def finish(self, bias: torch.Tensor | None):
        gw = None if self.grad_w is None else self.grad_w.to(self.weight.dtype)
        gb = None if self.grad_b is None else self.grad_b.to(bias.dtype)
        return self.grad_h, gw, gb


def _forward_keep(ctx, hidden, weight, bias, targets, valid, safe_t):
    """One-chunk forward that saves the (N, V) log-softmax (fused, faster) for backward."""
    z = torch.mm(hidden, weight.t()) if bias is None else torch.addmm(bias, hidden, weight.t())
    z = z.float()
    m, arg = z.max(dim=1, keepdim=True)
    log_sm = torch.log_softmax(z, dim=1)
    del z
    lse = (m - log_sm.gather(1, arg)).squeeze(1)  # exact at the argmax: log_sm there is -log(sum)
    loss = log_sm.gather(1, safe_t[:, None]).squeeze(1).neg_().masked_fill_(~valid, 0.0)
    ctx.save_for_backward(hidden, weight, bias, targets, log_sm)
    return loss, lse


def chunked_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    softcap: float | None = None,
    rows: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token loss (0 where ignored) and lse, both (N,) fp32, for 2-D hidden / 1-D targets."""
    if rows is None:
        rows = chunk_rows(hidden.shape[0], weight.shape[0])
    return ChunkedLinearCrossEntropy.apply(hidden, weight, bias, targets, ignore_index, softcap, rows)
