"""A byte-level BPE tokenizer trained on the pipeline's own text, saved in the Hugging Face layout.

Choices, and why:
- **Byte level** (GPT-2 style): every string encodes, nothing maps to `<unk>`, and `decode(encode(x)) == x`
  exactly, which matters because actions are JSON that is parsed back.
- **Digits split one by one** (`Digits(individual_digits=True)` before `ByteLevel`): control labels (`47`),
  paragraph indices and character offsets are copied and compared digit by digit; with merged digits the same
  number would tokenize differently depending on its neighbours and a small vocabulary would be spent on
  frequent numbers. It costs little: numbers are a small part of the text.
- **ByteLevel with the GPT-2 regex and `add_prefix_space=False`**: merges never cross word / punctuation /
  whitespace boundaries, so `"control_label": "7"` stays a sequence of reusable pieces (`"`, `control`,
  `_label`, `":`, ...) and a span copied from the request keeps the tokens it had there (apart from the first
  word's leading space). No prefix space: prompts begin with `<` or a letter and a prefix space would change
  the first token of every completion.
- **A BOS token is prepended** by the post-processor (as Mistral's tokenizer does); call with
  `add_special_tokens=False` to encode a continuation (a completion appended to its prompt). EOS is not added:
  the trainer appends it where a sequence ends.

Training is deterministic: the same texts in the same order give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from lamops.io import replace_dir

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
# Ids 0-3, in this order: pad first so that zero-filled buffers read as padding.
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN]
# The JSONL datasets the tokenizer learns from: train splits only, never test.
CORPUS_DATASETS = ("plan_sft", "sft")


def corpus_texts(datasets_dir: Path, limit: int | None = None) -> Iterator[str]:
    """Prompts and completions of `plan_sft/train.jsonl` then `sft/train.jsonl`, in file order.

    `limit` caps the number of records read from each file (None: all). Test splits are never read: the
    tokenizer must not see evaluation data.
    """
    for name in CORPUS_DATASETS:
        path = Path(datasets_dir) / name / "train.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: tokenizer corpus file missing; run the `datasets` stage first")
        with path.open(encoding="utf-8") as lines:
            for index, line in enumerate(lines):
                if limit is not None and index >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    yield record["prompt"]
                    yield record["completion"]
                except (json.JSONDecodeError, KeyError) as error:
                    raise ValueError(
                        f"{path}:{index + 1}: not a prompt/completion record ({error})"
                    ) from error


def train_tokenizer(
    texts: Iterable[str], out_dir: Path, *, vocab_size: int, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts`, save it to `out_dir` (Hugging Face layout, atomically), return it.

    `vocab_size` includes the 256 byte tokens and the 4 special tokens; a small corpus may yield fewer.
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size={vocab_size}: must be at least {256 + len(SPECIAL_TOKENS)} (bytes + specials)"
        )
    backend = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    bos_id = backend.token_to_id(BOS_TOKEN)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        clean_up_tokenization_spaces=False,
    )
    with replace_dir(Path(out_dir)) as staging:
        tokenizer.save_pretrained(staging)
    return tokenizer
