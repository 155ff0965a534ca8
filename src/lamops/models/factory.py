"""The model factory: a randomly initialised tiny Mistral, or a pretrained causal LM loaded offline.

`make_model(spec, tokenizer)` is the one entry point the training phases call; `save` publishes a phase's
model and tokenizer atomically in the `save_pretrained` layout, which the next phase loads with
`ModelSpec(source="pretrained", path=...)`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, get_args

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from lamops.io import replace_dir
from lamops.settings import Dtype, ModelSpec

__all__ = [
    "ModelSpec",
    "build_tiny",
    "is_model_folder",
    "load_pretrained",
    "load_tokenizer",
    "make_model",
    "save",
    "saved_dtype",
]
_TRUE = {"1", "true", "yes", "on"}
ADAPTER_CONFIG = "adapter_config.json"  # peft's: a folder of LoRA adapters and the name of their base


def mistral_config(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase) -> MistralConfig:
    """The MistralConfig of a tiny model: sizes from the spec, vocabulary and special ids from the
    tokenizer."""
    if len(tokenizer) > spec.vocab_size:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens but the spec's vocab_size is {spec.vocab_size}: "
            "the tokenizer was trained for another spec; retrain it or raise vocab_size"
        )
    missing = [
        name for name in ("bos_token_id", "eos_token_id", "pad_token_id") if getattr(tokenizer, name) is None
    ]
    if missing:
        raise ValueError(f"tokenizer lacks {', '.join(missing)}: train it with lamops.models.tokenizer")
    return MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.hidden_size // spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        sliding_window=spec.sliding_window,
        rope_theta=spec.rope_theta,
        tie_word_embeddings=spec.tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype=spec.dtype,
    )


def build_tiny(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase) -> MistralForCausalLM:
    """A randomly initialised MistralForCausalLM; the same spec and tokenizer give the same weights.

    The seed is applied in a forked RNG, so building a model leaves the caller's torch random state alone.
    """
    config = mistral_config(spec, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = MistralForCausalLM(config)
    return model.to(getattr(torch, spec.dtype))


def load_pretrained(spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer with the Auto classes from `spec.path`.

    `spec.path` is a local `save_pretrained` folder, a peft adapter folder (its base loaded and the adapters
    merged in) or a hub name; with HF_HUB_OFFLINE set only local files are used. A tokenizer without a pad
    token gets EOS as pad (common for pretrained decoders).
    """
    if not spec.path:
        raise ValueError("load_pretrained needs spec.path: a save_pretrained folder or a hub name")
    local = Path(spec.path).expanduser()
    looks_local = local.is_absolute() or spec.path.startswith((".", "~")) or local.exists()
    if looks_local and not is_model_folder(local):
        what = "does not exist" if not local.exists() else "has no config.json (nor adapter_config.json)"
        raise FileNotFoundError(
            f"pretrained model path {local} {what}: expected a save_pretrained folder (config.json, weights "
            "and tokenizer files), e.g. the output of an earlier training phase, or a peft adapter folder"
        )
    if looks_local and not (local / "config.json").is_file():
        return _load_adapter(local, spec)
    source = str(local) if looks_local else spec.path
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=getattr(torch, spec.dtype), local_files_only=offline
        )
    except OSError as error:
        where = (
            "local folder"
            if looks_local
            else "hub name" + (" (offline: local cache only)" if offline else "")
        )
        raise FileNotFoundError(f"cannot load pretrained model from {where} {source!r}: {error}") from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def is_model_folder(folder: str | Path) -> bool:
    """A save_pretrained folder (config.json) or a peft adapter folder (adapter_config.json)."""
    return (Path(folder) / "config.json").is_file() or (Path(folder) / ADAPTER_CONFIG).is_file()


def _adapter_base(folder: Path) -> str:
    base = json.loads((folder / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not base:
        raise FileNotFoundError(
            f"{folder / ADAPTER_CONFIG} names no base_model_name_or_path: set it to the base model's folder"
        )
    return base


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a model folder; an adapter folder without one has its base's."""
    folder = Path(folder)
    source = str(folder)
    if not (folder / "tokenizer_config.json").is_file() and (folder / ADAPTER_CONFIG).is_file():
        source = _adapter_base(folder)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE
    return AutoTokenizer.from_pretrained(source, local_files_only=offline or source == str(folder))


def _load_adapter(folder: Path, spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A peft adapter folder: its base (`base_model_name_or_path`, loaded as `load_pretrained` loads any
    model) with the adapters merged in; the folder's own tokenizer when it has one, else the base's."""
    from peft import PeftModel

    base, tokenizer = load_pretrained(spec.model_copy(update={"path": _adapter_base(folder)}))
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    model = PeftModel.from_pretrained(base, folder).merge_and_unload()
    return model.requires_grad_(True), tokenizer  # peft froze the base; a loaded model trains whole


def saved_dtype(folder: str | Path) -> str:
    """The parameter dtype a save_pretrained folder was written in (its config.json; an adapter folder's
    base's), as a ModelSpec names it; float32 when none is named or ModelSpec does not know it."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() and (folder / ADAPTER_CONFIG).is_file():
        folder = Path(_adapter_base(folder))
    if not (folder / "config.json").is_file():
        return "float32"
    config = json.loads((folder / "config.json").read_text())
    dtype = config.get("dtype") or config.get("torch_dtype")
    return dtype if dtype in get_args(Dtype) else "float32"


def make_model(
    spec: ModelSpec, tokenizer: PreTrainedTokenizerBase | Path | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model and tokenizer a phase starts from.

    - `tiny`: `tokenizer` is required, a trained tokenizer or its `save_pretrained` folder (see
      `lamops.models.tokenizer.train_tokenizer`); the model is `build_tiny(spec, tokenizer)`.
    - `pretrained`: model and tokenizer come from `spec.path`; passing a tokenizer is an error, since a
      tokenizer other than the model's own would silently garble its inputs.
    """
    if spec.source == "pretrained":
        if tokenizer is not None:
            raise ValueError("source 'pretrained' uses the tokenizer saved with the model; do not pass one")
        return load_pretrained(spec)
    if tokenizer is None:
        raise ValueError("source 'tiny' needs a trained tokenizer (or its folder): see train_tokenizer")
    if isinstance(tokenizer, str | Path):
        folder = Path(tokenizer)
        if not (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{folder}: no tokenizer.json; train the tokenizer first")
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return build_tiny(spec, tokenizer), tokenizer


def save(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write model and tokenizer with `save_pretrained` into `out_dir`, replacing it atomically; `extra`
    maps file names to JSON-able records written beside them (e.g. how the model was trained)."""
    with replace_dir(Path(out_dir)) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for name, record in (extra or {}).items():
            (staging / name).write_text(json.dumps(record, indent=2) + "\n")
    return Path(out_dir)


def parameter_count(model: torch.nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters, tied weights counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flops_per_token(model: PreTrainedModel, seq_len: int = 0) -> int:
    """Training FLOPs per token (forward + backward), Kaplan et al. 2020: C = 6 N + 6 L T d.

    N is the number of parameters used in matrix multiplies: all parameters except an untied input embedding
    table (a lookup, no multiply; when tied it counts once, as the output head). The second term is the
    attention scores and weighted sum over a context of T = `seq_len` tokens (L layers, d = heads x head
    dim); 0 leaves it out, which is close when T is small against 12 d. Forward alone is a third of this.
    """
    n = parameter_count(model)
    embeddings = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    if output is None or output.weight is not embeddings:
        n -= embeddings.numel()
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention_width = config.num_attention_heads * head_dim
    return 6 * n + 6 * config.num_hidden_layers * seq_len * attention_width
