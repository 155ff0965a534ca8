"""What model a phase starts from: `ModelSpec`, importable without torch or transformers (config loads it).

`lamops.models.factory` builds and loads the model a spec describes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

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
        description="Parameter dtype, also of a `pretrained` model as loaded. float32 on CPU (bf16 trains "
        "there too, slower than fp32 without AMX); bfloat16 on GPUs.",
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


# ---- trainers ------------------------------------------------------------------------------------------
MISTRAL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainerSettings(BaseModel):
    """What every trainer reads: optimiser, length, budget, clipping, seed and logging cadence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(default=2e-5, gt=0, description="Peak learning rate of AdamW.")
    epochs: float = Field(
        default=1.0, gt=0, description="Passes over the data; ignored when max_steps is set."
    )
    max_steps: int | None = Field(
        default=None, ge=1, description="Optimizer steps to run instead of `epochs`; null: from epochs."
    )
    max_len: int = Field(
        default=1024,
        ge=4,
        description="Longest sample in tokens; a longer prompt loses canvas lines first "
        "(lamops.agents.prompt.fit_prompt).",
    )
    weight_decay: float = Field(
        default=0.0, ge=0, description="AdamW weight decay, on matrices only (not norms or biases)."
    )
    grad_clip: float = Field(
        default=1.0, ge=0, description="Clip the global gradient norm to this; 0 turns clipping off."
    )
    seed: int = Field(default=0, description="Seed of the data order, the sampling and torch on each worker.")
    log_every: int = Field(default=10, ge=1, description="Optimizer steps per metrics record.")


def _default(field: str, value: Any, base: type[BaseModel] = TrainerSettings) -> Any:
    """A shared field of `base` with another default: bounds and description stay declared once."""
    info = FieldInfo.merge_field_infos(base.model_fields[field], default=value)
    return info


class _SupervisedSettings(TrainerSettings):
    """Trainers on labelled samples (SFT, reward model): micro-batches, accumulation and warm-up."""

    warmup_steps: int = Field(default=2, ge=0, description="Optimizer steps of linear warm-up to `lr`.")
    micro_batch_size: int = Field(default=8, ge=1, description="Samples per worker per forward pass.")
    gradient_accumulation_steps: int = Field(
        default=1,
        ge=1,
        description="Micro-batches per optimizer step; global batch = micro x accum x workers.",
    )
    group_by_length: bool = Field(
        default=True,
        description="Fill each micro-batch with samples of similar length (sorted within spans of 32 global "
        "micro-batches, whose order stays random): far less padding. false: a plain shuffle.",
    )


class RewardConfig(_SupervisedSettings):
    """Hyperparameters of the reward model. Defaults follow the paper (lr 2e-5 linear, AdamW, 2 epochs,
    LoRA r=8 alpha=32 dropout 0.1) where it states them."""

    warmup_steps: int = _default("warmup_steps", 0, _SupervisedSettings)
    epochs: float = _default("epochs", 2.0)
    lora_r: int = Field(default=8, ge=1, description="Rank of the LoRA adapters.")
    lora_alpha: float = Field(default=32, gt=0, description="LoRA scale numerator: updates are x alpha/r.")
    lora_dropout: float = Field(default=0.1, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_target_modules: tuple[str, ...] = Field(
        default=MISTRAL_LINEAR, min_length=1, description="Module names that get LoRA adapters."
    )
    eval_batch_size: int = Field(default=16, ge=1, description="Samples per forward pass when scoring.")


class SFTConfig(_SupervisedSettings):
    """Hyperparameters of one SFT phase. Defaults follow the paper (lr 2e-5, cosine, 2 warm-up steps,
    batch 16, 3 epochs) where it states them. With `lora_r` set the phase trains LoRA adapters only (peft;
    the reward model's field names and defaults) and publishes them merged into the base weights."""

    epochs: float = _default("epochs", 3.0)
    schedule: Literal["cosine", "linear"] = Field(
        default="cosine", description="Decay after warm-up, towards 0 at the last step."
    )
    lora_r: int | None = Field(
        default=None,
        ge=1,
        description="Rank of LoRA adapters on `lora_target_modules`, the base weights frozen (a 7B phase "
        "needs a fraction of the GPU memory); the published model has them merged in, a plain "
        "save_pretrained folder. null: full fine-tuning.",
    )
    lora_alpha: float = _default("lora_alpha", 32, RewardConfig)
    lora_dropout: float = _default("lora_dropout", 0.1, RewardConfig)
    lora_target_modules: tuple[str, ...] = _default("lora_target_modules", MISTRAL_LINEAR, RewardConfig)


class PPOConfig(TrainerSettings):
    """Hyperparameters of LAM4. Defaults follow the paper (lr 1.4e-5, batch 8, mini-batch 1, 4 PPO epochs,
    target KL 0.1, initial KL coefficient 0.2) where it states them. A step is one PPO batch."""

    lr: float = _default("lr", 1.4e-5)
    log_every: int = _default("log_every", 1)
    batch_size: int = Field(
        default=8, ge=1, description="Prompts per PPO batch, all workers together; a multiple of the workers."
    )
    mini_batch_size: int = Field(
        default=1, ge=1, description="Samples per worker per optimizer step; divides batch_size / workers."
    )
    ppo_epochs: int = Field(default=4, ge=1, description="Passes over each sampled batch.")
    clip_range: float = Field(default=0.2, gt=0, description="epsilon of the clipped ratio.")
    target_kl: float = Field(default=0.1, gt=0, description="KL to the reference the controller aims at.")
    init_kl_coef: float = Field(default=0.2, ge=0, description="Initial KL coefficient beta.")
    kl_horizon: float = Field(default=10000, gt=0, description="Controller horizon, in samples (TRL's).")
    max_new_tokens: int = Field(
        default=160,
        ge=1,
        description="Longest sampled completion in tokens; the agent's default (the SFT data's longest "
        "action is ~150), so prompts are fitted as the agent fits them.",
    )
    temperature: float = Field(
        default=1.0, gt=0, description="Temperature of the grammar-constrained sampling (top-k/top-p off)."
    )
    reward_batch_size: int = Field(default=8, ge=1, description="Samples per reward-model forward pass.")
    candidate_every: int = Field(
        default=0,
        ge=0,
        description="Also publish the policy after every this many batches as a candidate for the guard, "
        "which keeps the best of them and the final one (lamops.evaluation.guard); 0: the final one only.",
    )

    @model_validator(mode="after")
    def _room_for_a_prompt(self) -> PPOConfig:
        if self.max_len <= self.max_new_tokens + 1:
            raise ValueError(
                f"max_len {self.max_len} leaves no room for BOS and a prompt before {self.max_new_tokens} "
                "new tokens; raise max_len or lower max_new_tokens"
            )
        return self
