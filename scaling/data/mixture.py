"""`MixtureSource`: a general and a domain source mixed at an exact domain share (for CPT).

Sequence i of the global stream (i = step·batch_size + row) is a domain sequence iff
floor((i+1)·r) > floor(i·r). Then exactly floor(N·r) of the first N sequences are domain, for
every N, and domain sequence i is the floor(i·r)-th sequence of the domain source's own stream
(general: the (i - floor(i·r))-th). So a mixture run sees a prefix of each component's stream,
whatever the share. r is held as a fraction with denominator <= 10**6 so the counts are exact
integer arithmetic.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from scaling.data.base import EvalSet, IndexedSource, check_positive
from scaling.errors import SpecError

_MAX_DENOMINATOR = 10**6


class MixtureSource(IndexedSource):
    """Mixes `general` and `domain` (same vocabulary) so that a share `domain_share` is domain."""

    kind: ClassVar[str] = "mixture"
    OPTIONS: ClassVar[dict[str, Any]] = {
        "general": {"kind": "zipf_facts", "options": {}},
        "domain": {"kind": "zipf_facts", "options": {}},
        "domain_share": 0.1,
    }

    def __init__(
        self, general: IndexedSource, domain: IndexedSource, domain_share: float, name: str = "mixture"
    ) -> None:
        for role, src in (("general", general), ("domain", domain)):
            if not isinstance(src, IndexedSource):
                raise SpecError(f"mixture: `{role}` must be a scaling.data source, got {type(src).__name__}")
        if general.vocab_size != domain.vocab_size:
            raise SpecError(
                f"mixture: general and domain sources must share a vocabulary; got vocab_size "
                f"{general.vocab_size} ({general.name}) and {domain.vocab_size} ({domain.name})"
            )
        tok_g, tok_d = getattr(general, "tokenizer", None), getattr(domain, "tokenizer", None)
        if tok_g is not None and tok_d is not None and tok_g.fingerprint != tok_d.fingerprint:
            raise SpecError(
                "mixture: general and domain sources use different tokenizers; build both with the same one"
            )
        if isinstance(domain_share, bool) or not isinstance(domain_share, (int, float)) or not 0 <= domain_share <= 1:
            raise SpecError(f"mixture: `domain_share` must be a number in [0, 1], got {domain_share!r}")
        self.general, self.domain, self.name = general, domain, name
        self.vocab_size = general.vocab_size
        self.share = Fraction(domain_share).limit_denominator(_MAX_DENOMINATOR)
        self.domain_share = float(self.share)
        self.tokenizer = tok_g if tok_g is not None else tok_d
        lg, ld = general.bayes_loss_expected, domain.bayes_loss_expected
        r = self.domain_share
        self.bayes_loss_expected = None if lg is None or ld is None else (1 - r) * lg + r * ld

    # ------------------------------------------------------------ exact share

    def n_domain(self, n_sequences: np.ndarray | int) -> np.ndarray | int:
        """How many of the first n sequences of the global stream are domain: floor(n·r)."""
        p, q = self.share.numerator, self.share.denominator
        if isinstance(n_sequences, (int, np.integer)):
            return int(n_sequences) * p // q
        return np.asarray(n_sequences, dtype=np.int64) * p // q

    def is_domain(self, index: np.ndarray) -> np.ndarray:
        i = np.asarray(index, dtype=np.int64)
        return self.n_domain(i + 1) > self.n_domain(i)

    def domain_tokens(self, n_steps: int, batch_size: int, seq_len: int) -> int:
        """Exact number of domain tokens (targets) in the first n_steps batches."""
        n = check_positive("batch_size", batch_size) * int(n_steps)
        return self.n_domain(n) * check_positive("seq_len", seq_len)

    # ------------------------------------------------------------ LMSource

    def sequences(self, index: np.ndarray, seq_len: int, seed: int) -> np.ndarray:
        i = np.asarray(index, dtype=np.int64)
        before = self.n_domain(i)  # domain sequences before i
        dom = self.n_domain(i + 1) > before
        out = np.empty((len(i), seq_len + 1), dtype=np.int64)
        if dom.any():
            out[dom] = self.domain.sequences(before[dom].astype(np.uint64), seq_len, seed)
        if not dom.all():
            out[~dom] = self.general.sequences((i - before)[~dom].astype(np.uint64), seq_len, seed)
        return out

    def info(self) -> dict[str, Any]:
        out = {**super().info(), "domain_share": self.domain_share}
        for role, src in (("general", self.general), ("domain", self.domain)):
            out.update({f"{role}_{k}": v for k, v in src.info().items()})
        return out

    def expected_bayes_loss(self, seq_len: int) -> float | None:
        lg, ld = self.general.expected_bayes_loss(seq_len), self.domain.expected_bayes_loss(seq_len)
        return None if lg is None or ld is None else (1 - self.domain_share) * lg + self.domain_share * ld

    def eval_sets(self, seq_len: int, n_tokens: int) -> dict[str, EvalSet]:
        out: dict[str, EvalSet] = {}
        for role, src in (("general", self.general), ("domain", self.domain)):
            for name, ev in src.eval_sets(seq_len, n_tokens).items():
                full = f"{role}/{name}"
                out[full] = EvalSet(full, ev.x, ev.y, ev.bayes_loss)
        return out

    @classmethod
    def from_options(cls, options: dict[str, Any], *, tokenizer: Any = "byte", seed: int = 0) -> MixtureSource:
        from scaling.data.registry import build_source

        built = {}
        for role, offset in (("general", 0), ("domain", 1)):
            spec = options[role]
            if not isinstance(spec, dict) or "kind" not in spec or set(spec) - {"kind", "options"}:
                raise SpecError(
                    f"mixture: option `{role}` must be a table {{kind = ..., options = {{...}}}}, got {spec!r}"
                )
            if spec["kind"] == "mixture":
                raise SpecError(f"mixture: `{role}` cannot itself be a mixture")
            # The domain gets world seed + 1 so that two same-kind sources differ (e.g. two fact tables)
            # unless its options pin `world_seed`; a trained BPE is shared so vocabularies match.
            built[role] = build_source(spec["kind"], spec.get("options", {}), tokenizer=tokenizer, seed=seed + offset)
            if isinstance(tokenizer, str) and tokenizer == "bpe" and hasattr(built[role], "tokenizer"):
                tokenizer = built[role].tokenizer
        return cls(built["general"], built["domain"], options["domain_share"])
