"""Small tokenizer.json files built locally with `tokenizers` (nothing is downloaded)."""

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

TEXTS = ["The quick brown fox jumps over the lazy dog.", "def f(x):\n    return x * 2  # café ☕",
         "Scaling laws relate loss to parameters and data."] * 20  # fmt: skip


def byte_level_json(path: Path, *, eos: str = "<|endoftext|>", vocab_size: int = 320, bos: str | None = None) -> Path:
    """A byte-level BPE like GPT-2's (eos `<|endoftext|>`) or, with bos, Llama-style (`<s>` ... `</s>`)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = [eos] + ([bos] if bos else [])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(TEXTS, trainer=trainer)
    if bos:  # a template that adds BOS, as Llama's does; sources must not get it inside documents
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, bos_id)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def big_vocab_json(path: Path, n: int = 70_000) -> Path:
    """A word-level vocabulary with more ids than uint16 holds; `</s>` has the largest id."""
    vocab = {f"w{i}": i for i in range(n - 2)} | {"[UNK]": n - 2, "</s>": n - 1}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path
