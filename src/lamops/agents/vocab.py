"""The vocabulary side of `lamops.agents.decoding`: every token id's bytes, a trie over them, the masks of
free-text tokens, and the tokens whose tokenization is stable after a forced chunk."""

from __future__ import annotations

import functools
import json
import re
import weakref
from collections.abc import Sequence
from typing import Any

import torch

from lamops.agents.grammar import BACKSLASH, QUOTE, FreeText

# ---------------------------------------------------------------------------------------------- vocabulary


class Vocab:
    """The bytes of every token id (None: special or unknown, never allowed), a trie over them, and the
    free-text masks. Built once per tokenizer and model size (`vocab_for`)."""

    def __init__(self, tokenizer: Any, size: int):
        self.tokenizer = tokenizer
        self.size = size
        pieces = token_bytes(tokenizer)
        self.bytes: list[bytes | None] = (pieces + [None] * size)[:size]
        self.root: list = [{}, []]
        for tid, piece in enumerate(self.bytes):
            if not piece:
                continue
            node = self.root
            for b in piece:
                node = node[0].setdefault(b, [{}, []])
            node[1].append(tid)
        # Tokens with a quote or a backslash: the only ones that can leave free text or escape in it.
        self.special = [i for i, p in enumerate(self.bytes) if p and (QUOTE in p or BACKSLASH in p)]
        self._free: dict[Any, torch.Tensor] = {}
        self._stable: dict[tuple, list[int]] = {}

    def free_mask(self, s) -> torch.Tensor:
        """Tokens made only of free-text bytes (no quote, no backslash) that are valid from sub-state `s`."""
        mask = self._free.get(s)
        if mask is None:
            ok = []
            for tid, piece in enumerate(self.bytes):
                if not piece or QUOTE in piece or BACKSLASH in piece:
                    continue
                t = s
                for b in piece:
                    t = FreeText.step(t, b)
                    if t is None:
                        break
                else:
                    ok.append(tid)
            mask = torch.zeros(self.size, dtype=torch.bool)
            mask[ok] = True
            self._free[s] = mask
        return mask

    def stable_tokens(self, forced: bytes, probes: tuple[str, ...]) -> list[int]:
        """The tokens that start `forced` whatever comes after it: the longest common prefix of the
        tokenizations of `forced` alone and followed by each probe, cut to whole bytes of `forced`."""
        text = _decodable_prefix(forced)
        if not text:
            return []
        key = (text, probes)
        hit = self._stable.get(key)
        if hit is not None:
            return hit
        batch = self.continuations([text, *(text + p for p in probes)])
        if any(ids is None for ids in batch):
            self._stable[key] = []
            return []
        common = list(batch[0])
        for ids in batch[1:]:
            n = 0
            while n < len(common) and n < len(ids) and common[n] == ids[n]:
                n += 1
            del common[n:]
        out, acc = [], b""
        for tid in common:
            piece = self.bytes[tid] if tid < self.size else None
            if not piece or not forced.startswith(acc + piece):
                break
            acc += piece
            out.append(tid)
        if len(self._stable) > 100_000:  # forced chunks repeat (literals, labels): this is a safety net
            self._stable.clear()
        self._stable[key] = out
        return out

    def continuations(self, texts: Sequence[str]) -> list[list[int] | None]:
        """The tokens of each text as it continues a sequence (after a prompt, after the tokens so far):
        tokens that spell exactly the text's bytes; None where the tokenizer cannot (an unknown character).

        The tokenizer's own tokenization where it spells the text. A tokenizer that starts every text at a
        word boundary (SentencePiece's `▁`, prepended by Mistral's and Llama's tokenizers) spells a space
        first: the text is then tokenized after a newline, where no boundary is added, and the newline's
        tokens are dropped; mid-text tokenization is what the model meets when it reads the text after the
        prompt, and what the grammar writes (it never writes that space)."""
        batch = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        out: list[list[int] | None] = [
            list(ids) if self.spells(ids, text) else None for ids, text in zip(batch, texts, strict=True)
        ]
        redo = [k for k, ids in enumerate(out) if ids is None]
        if redo:
            again = self.tokenizer(["\n" + texts[k] for k in redo], add_special_tokens=False)["input_ids"]
            for k, ids in zip(redo, again, strict=True):
                rest = self._after_newline(ids)
                out[k] = rest if rest is not None and self.spells(rest, texts[k]) else None
        return out

    def spells(self, ids: Sequence[int], text: str) -> bool:
        """Whether the bytes of `ids` are exactly `text`'s UTF-8 bytes (special, unknown tokens never are)."""
        data, at = text.encode("utf-8"), 0
        for tid in ids:
            piece = self.bytes[tid] if 0 <= tid < self.size else None
            if not piece or not data.startswith(piece, at):
                return False
            at += len(piece)
        return at == len(data)

    def _after_newline(self, ids: list[int]) -> list[int] | None:
        """`ids` without the tokens of a leading newline (and a prepended space); None if they do not end
        where the newline does."""
        acc = b""
        for k, tid in enumerate(ids):
            piece = self.bytes[tid] if tid < self.size else None
            if piece is None:  # a special token (BOS) added by the tokenizer
                continue
            acc += piece
            if acc in (b"\n", b" \n"):
                return list(ids[k + 1 :])
            if len(acc) >= 2:
                return None
        return None


def continuation_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids (no special tokens) of `text` as it continues a sequence: what the decoder writes for it and
    what training puts after a prompt (`Vocab.continuations`). The tokenizer's plain tokenization where no
    tokenization spells the text exactly (a character it maps to an unknown token), or where the tokenizer has
    no vocabulary to read (a callable that only maps text to ids, as tests' CharTokenizer)."""
    if not hasattr(tokenizer, "convert_ids_to_tokens"):
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    ids = vocab_for(tokenizer).continuations([text])[0]
    return ids if ids is not None else list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _decodable_prefix(data: bytes) -> str:
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return ""


_VOCABS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def vocab_for(tokenizer: Any, size: int | None = None) -> Vocab:
    """The (cached) Vocab of `tokenizer` padded to `size` ids (the model's output size)."""
    size = size or len(tokenizer)
    per = _VOCABS.setdefault(tokenizer, {})
    if size not in per:
        per[size] = Vocab(tokenizer, size)
    return per[size]


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-to-unicode table, inverted (what a ByteLevel tokenizer's token strings are made of)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def token_bytes(tokenizer: Any) -> list[bytes | None]:
    """The bytes each token id stands for; None for special tokens.

    Byte-level BPE (GPT-2 style, lamops' own tokenizer): token strings map back through the byte table.
    SentencePiece style (Mistral, Llama): `▁` is a space and `<0xNN>` a raw byte. Other tokenizers fall back
    to decoding each id alone, which is right for whole-character tokens."""
    n = len(tokenizer)
    special = set(getattr(tokenizer, "all_special_ids", []))
    tokens = tokenizer.convert_ids_to_tokens(list(range(n)))
    decoder = ""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.decoder is not None:
        decoder = json.dumps(json.loads(backend.to_str()).get("decoder"))
    table = _byte_decoder()
    out: list[bytes | None] = []
    for tid, tok in enumerate(tokens):
        if tid in special or tok is None:
            out.append(None)
        elif "ByteLevel" in decoder:
            try:
                out.append(bytes(table[ch] for ch in tok))
            except KeyError:
                out.append(None)
        elif "▁" in decoder or "ByteFallback" in decoder:
            m = _BYTE_TOKEN.fullmatch(tok)
            out.append(bytes([int(m.group(1), 16)]) if m else tok.replace("▁", " ").encode("utf-8"))
        else:
            out.append(tokenizer.decode([tid]).encode("utf-8") or None)
    return out
