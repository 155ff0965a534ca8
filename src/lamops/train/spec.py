"""What model a phase starts from: `ModelSpec`, importable without torch or transformers (config loads it).

`lamops.train.models` builds and loads the model a spec describes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import torch

Dtype = Literal["float32", "bfloat16", "float16"]


class ModelSpec(BaseModel):
    """What model a phase starts from. The defaults are the recommended tiny model for 2 CPU cores.

    Default: 192 wide, 4 layers, 4 query / 2 key-value heads, SwiGLU 512, tied embeddings, 2,048-token
    vocabulary: 2.0M parameters (0.4M of them the embedding). Measured on 2 cores, fp32, AdamW, one training
    step at batch 8 x 256 tokens: ~6.9-7.5k tokens/s (~100 GFLOP/s by `flops_per_token`); 2.9M params (256
    wide) ~6.2k, 5.3M (256 wide, 6 layers, SwiGLU 768) ~3.4k. SFT samples are ~750 tokens (p95 ~950) with
    this vocabulary, so a batch of 8 is ~1 optimizer step per second; the STACK-NOTES experiment found steps
    worth more than parameters at this scale, hence the small default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["tiny", "pretrained"] = Field(
        default="tiny",
        description="`tiny`: a randomly initialised MistralForCausalLM of the sizes below, with the "
        "pipeline's own tokenizer. `pretrained`: load model and tokenizer from `path` (sizes below are "
        "ignored).",
    )
    path: str | None = Field(
        default=None,
        description="For `pretrained`: a local `save_pretrained` folder (an earlier phase's output) or a hub "
        "name already in the local cache (offline when HF_HUB_OFFLINE is set).",
    )
    hidden_size: int = Field(default=192, gt=0, description="Width of the residual stream.")
    intermediate_size: int = Field(default=512, gt=0, description="Width of the SwiGLU MLP.")
    num_hidden_layers: int = Field(default=4, gt=0, description="Number of decoder layers.")
    num_attention_heads: int = Field(default=4, gt=0, description="Query heads; must divide hidden_size.")
    num_key_value_heads: int = Field(
        default=2, gt=0, description="Key/value heads (grouped-query attention); must divide the query heads."
    )
    max_position_embeddings: int = Field(
        default=2048, gt=0, description="Longest sequence the model is built for (RoPE positions)."
    )
    sliding_window: int | None = Field(
        default=None, gt=0, description="Attention window in tokens, or null for full causal attention."
    )
    vocab_size: int = Field(
        default=2048,
        gt=0,
        description="Vocabulary size the tokenizer is trained to. The model's embedding takes the trained "
        "tokenizer's actual size, which may be smaller on a small corpus, never larger.",
    )
    rope_theta: float = Field(default=10000.0, gt=0, description="RoPE base frequency.")
    tie_word_embeddings: bool = Field(
        default=True, description="Share input embedding and output head: saves vocab x hidden parameters."
    )
    dtype: Dtype = Field(
        default="float32",
        description="Parameter dtype. float32 on CPU (bf16 matmuls are slow there); bfloat16 on GPUs.",
    )
    seed: int = Field(default=0, description="Seed of the random initialisation of a tiny model.")

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.source == "pretrained" and not self.path:
            raise ValueError("source 'pretrained' needs `path`: a save_pretrained folder or a hub name")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not divisible by num_key_value_heads "
                f"{self.num_key_value_heads}"
            )
        return self

    @property
    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype)
