"""CPU path: linear + cross-entropy in row chunks, never holding the (N, V) logits.

Forward keeps one (chunk, V) buffer and saves the inputs and the per-token log-sum-exp,
never logits; backward recomputes each chunk's logits, turns them into the softmax in place
and accumulates grad_hidden / grad_weight with matmuls. For a mean or sum of the loss
(`eager`), forward also accumulates the grads while each chunk's softmax is at hand and
backward only scales them: three matmuls instead of four. Peak extra memory is about
chunk * V (two buffers with softcap) plus the grads (V * D in fp32, N * D).
"""

from __future__ import annotations

import torch

# Bytes of one (chunk, V) fp32 buffer: big enough that per-chunk overheads (and re-reading
# grad_weight once per chunk) stay small, small enough to keep the extra memory far below
# the full logits.
CHUNK_BYTES = 64 * 2**20
# When all N x V fp32 logits fit in this many bytes (an eighth of a chunk), the dispatcher
# computes them in one go with PyTorch's fused ops (the reference): its few (N, V) buffers
# stay within one chunk's memory, and a custom Function's fixed overhead would dominate.
SMALL_BYTES = 8 * 2**20


def fits_one_step(n_rows: int, vocab: int) -> bool:
    """True when the whole (N, V) problem is small enough to run unchunked (see SMALL_BYTES)."""
    return n_rows * vocab * 4 <= SMALL_BYTES


def chunk_rows(n_rows: int, vocab: int, chunk_bytes: int | None = None) -> int:
    """Rows per chunk so one fp32 (rows, V) buffer takes about `chunk_bytes` (CHUNK_BYTES)."""
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
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
    """Per-token loss and lse of `softcap(hidden @ weight.T + bias)`; saves inputs + lse only."""

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
        eager: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, vocab = hidden.shape[0], weight.shape[0]
        invalid = targets == ignore_index
        safe_t = targets.masked_fill(invalid, 0).long()  # ignored rows read column 0, then zeroed
        ctx.softcap, ctx.rows = softcap, rows
        ctx.set_materialize_grads(False)  # an unused lse gets None, not a zero tensor
        lse = torch.empty(n, dtype=torch.float32, device=hidden.device)
        target_logit = torch.empty(n, dtype=torch.float32, device=hidden.device)
        buf = hidden.new_empty(min(rows, n), vocab)
        # eager: also accumulate the grads for unit weight on every kept token (see backward)
        grads = _Grads(hidden, weight, ctx.needs_input_grad[:3]) if eager else None
        unit = (~invalid).float() if eager else None
        deriv_buf = torch.empty(buf.shape, dtype=torch.float32, device=buf.device) if eager and softcap else None
        for s in range(0, n, rows):
            e = min(s + rows, n)
            z = _logits_into(buf[: e - s], hidden[s:e], weight, bias).float()
            if softcap is not None:
                t = z.div_(softcap).tanh_()
                if eager:
                    deriv = torch.mul(t, t, out=deriv_buf[: e - s]).neg_().add_(1.0)  # 1 - tanh^2
                t.mul_(softcap)
            torch.gather(z, 1, safe_t[s:e, None], out=target_logit[s:e, None])
            m = z.amax(dim=1, keepdim=True)
            # in-place exp(z - m) so no second (chunk, V) temporary is made
            sum_exp = z.sub_(m).exp_().sum(dim=1)
            torch.add(sum_exp.log(), m.squeeze(1), out=lse[s:e])
            if eager:  # z is exp(z - m): the softmax once rows are divided by sum_exp (folded into a)
                c = unit[s:e]
                if softcap is not None:
                    z.mul_(deriv)
                    c = c * deriv.gather(1, safe_t[s:e, None]).squeeze(1)
                grads.add_chunk(s, e, z, safe_t[s:e], unit[s:e] / sum_exp, c)
        del buf, deriv_buf
        loss = (lse - target_logit).masked_fill_(invalid, 0.0)
        ctx.save_for_backward(hidden, weight, bias, safe_t, invalid, lse)
        ctx.eager_grads = grads.finish(bias) if eager else None
        return loss, lse

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor | None, grad_lse: torch.Tensor | None):  # type: ignore[override]
        hidden, weight, bias, safe_t, invalid, lse = ctx.saved_tensors
        eager = _scale_eager(ctx, grad_loss, grad_lse, invalid)
        if eager is not None:
            return (*eager, None, None, None, None, None)
        softcap, rows = ctx.softcap, ctx.rows
        n, vocab = hidden.shape[0], weight.shape[0]
        need = ctx.needs_input_grad[:3]
        # d loss_i / d z_ij = a_i * softmax_ij - b_i * [j == t_i], with the lse's own grad in a_i
        b = torch.zeros(n, dtype=torch.float32, device=hidden.device)
        if grad_loss is not None:
            b = grad_loss.float().masked_fill(invalid, 0.0)
        a = b if grad_lse is None else b + grad_lse.float()
        grads = _Grads(hidden, weight, need)
        buf = hidden.new_empty(min(rows, n), vocab)
        deriv_buf = torch.empty(buf.shape, dtype=torch.float32, device=buf.device) if softcap else None
        # fp32 without bias or softcap: fold "- lse" into the matmul, saving a pass per chunk
        fold = bias is None and softcap is None and hidden.dtype == torch.float32
        neg_lse = lse.neg()[:, None]
        for s in range(0, n, rows):
            e = min(s + rows, n)
            if fold:
                q = torch.addmm(neg_lse[s:e], hidden[s:e], weight.t(), out=buf[: e - s]).exp_()
                grads.add_chunk(s, e, q, safe_t[s:e], a[s:e], b[s:e])
                continue
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
        return (*grads.finish(bias), None, None, None, None, None)


def _scale_eager(ctx, grad_loss, grad_lse, invalid):
    """The forward's unit-weight grads times the upstream grad, when that is one number.

    Under reduction "mean" or "sum" every kept token's loss gets the same upstream grad g,
    so the grads are g times those computed in forward (one matmul fewer than recomputing).
    Any other upstream (per-token weights, a grad through lse, a second backward) returns
    None and backward recomputes from the saved inputs and lse instead.
    """
    grads, ctx.eager_grads = ctx.eager_grads, None
    if grads is None or grad_lse is not None or grad_loss is None:
        return None
    kept = grad_loss[~invalid]
    if kept.numel() > 0 and not bool((kept == kept[0]).all()):
        return None
    scale = kept[0] if kept.numel() > 0 else 0.0
    return tuple(None if g is None else g.mul_(scale) for g in grads)


class _Grads:
    """Accumulates grads of g = a_i * q_ij - c_i * [j == t_i] without forming g.

    The row scale a and the one-hot term are applied to (rows, D) and (V, D) operands
    instead of the (rows, V) tile, which saves two passes over the tile per chunk.
    """

    def __init__(self, hidden: torch.Tensor, weight: torch.Tensor, need: tuple[bool, ...]):
        self.hidden, self.weight = hidden, weight
        self.fp32 = hidden.dtype == torch.float32
        f32 = dict(dtype=torch.float32, device=hidden.device)
        self.grad_h = torch.empty(hidden.shape, dtype=hidden.dtype, device=hidden.device) if need[0] else None
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


def chunked_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    softcap: float | None = None,
    rows: int | None = None,
    eager: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token loss (0 where ignored) and lse, both (N,) fp32, for 2-D hidden / 1-D targets.

    eager=True computes the grads during forward, for callers that reduce the per-token loss
    by a plain sum or mean (other uses still get correct grads, by recomputation).
    """
    if rows is None:
        rows = chunk_rows(hidden.shape[0], weight.shape[0])
    return ChunkedLinearCrossEntropy.apply(
        hidden, weight, bias, targets, ignore_index, softcap, rows, eager
    )
