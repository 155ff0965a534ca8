"""What a Mistral-shaped model costs before it is built: parameters, LoRA parameters, training FLOPs per token
and GPU memory per ZeRO stage. Pure arithmetic (no torch), so a dry run on a laptop can size a 7B run.

Memory of the model states, per GPU, for mixed-precision (bf16) training with Adam (Rajbhandari et al. 2020,
"ZeRO", section 3.1), Psi parameters, Psi_t of them trainable (all of them, or the LoRA adapters), N_d
data-parallel GPUs:

    weights    2 Psi     bytes (bf16)
    gradients  2 Psi_t   bytes (bf16)
    optimizer 12 Psi_t   bytes (fp32 master weights 4 + Adam momentum 4 + variance 4)

    ZeRO-0 (plain data parallel)  2 Psi + 2 Psi_t + 12 Psi_t
    ZeRO-1 (optimizer sharded)    2 Psi + 2 Psi_t + 12 Psi_t / N_d
    ZeRO-2 (+ gradients sharded)  2 Psi + (2 + 12) Psi_t / N_d
    ZeRO-3 (+ weights sharded)    (2 Psi + 14 Psi_t) / N_d

Activations are apart (`activation_bytes`): per layer 34 s b h bytes for 16-bit activations of a sequence of
s tokens, micro-batch b and width h with attention scores not stored (flash attention) and no recomputation
(Korthikanti et al. 2022, "Reducing Activation Recomputation", table 2 without its 5 a s / h term); with full
activation checkpointing, 2 s b h per layer (the layer inputs) plus one layer's recomputed activations.
Temporary buffers, fragmentation and the CUDA context (~1-3 GB) are not counted.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from lamops.settings import MISTRAL_LINEAR

GIB = 1024**3
WEIGHT_BYTES, GRAD_BYTES, OPTIMIZER_BYTES = 2, 2, 12  # bf16 weights and gradients; fp32 master + Adam m, v


class MistralShape(BaseModel):
    """The sizes that fix a Mistral's parameter count (Mistral has no biases; RMSNorm has one vector)."""

    model_config = ConfigDict(frozen=True)

    vocab_size: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    tie_word_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder block, by module name."""
        h, i, d = self.hidden_size, self.intermediate_size, self.head_dim
        q, kv = self.num_attention_heads * d, self.num_key_value_heads * d
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }


# Mistral-7B-v0.1's config.json; the paper's base model.
MISTRAL_7B = MistralShape(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
)
# Mistral-7B's shape scaled to ~1B for one GPU: half the width, half the layers, the same head size, GQA ratio
# (4 query heads per key-value head), MLP ratio (3.5) and vocabulary.
MISTRAL_1B = MistralShape(
    vocab_size=32000,
    hidden_size=2048,
    intermediate_size=7168,
    num_hidden_layers=16,
    num_attention_heads=16,
    num_key_value_heads=4,
)


def parameter_count(shape: MistralShape) -> int:
    """All parameters: embeddings (and an untied output head), each block's linear layers and two norms,
    the final norm."""
    per_block = sum(i * o for i, o in shape.linear_shapes().values()) + 2 * shape.hidden_size
    embeddings = shape.vocab_size * shape.hidden_size * (1 if shape.tie_word_embeddings else 2)
    return embeddings + shape.num_hidden_layers * per_block + shape.hidden_size


def lora_parameter_count(
    shape: MistralShape, r: int, target_modules: tuple[str, ...] = MISTRAL_LINEAR
) -> int:
    """Parameters of rank-`r` LoRA adapters (A: r x in, B: out x r) on every block's `target_modules`."""
    shapes = shape.linear_shapes()
    unknown = sorted(set(target_modules) - set(shapes))
    if unknown:
        raise ValueError(f"no linear layer named {unknown} in a Mistral block; known: {sorted(shapes)}")
    return shape.num_hidden_layers * sum(r * (shapes[m][0] + shapes[m][1]) for m in target_modules)


def flops_per_token(shape: MistralShape, seq_len: int) -> int:
    """Training FLOPs per token, forward + backward: 6 N + 6 L T d (Kaplan et al. 2020), N the parameters in
    matrix multiplies (an untied input embedding is a lookup) and the second term attention over T tokens;
    `lamops.models.factory.flops_per_token` computes the same from a built model."""
    n = parameter_count(shape)
    if not shape.tie_word_embeddings:
        n -= shape.vocab_size * shape.hidden_size
    width = shape.num_attention_heads * shape.head_dim
    return 6 * n + 6 * shape.num_hidden_layers * seq_len * width


def zero_model_state_bytes(params: int, trainable: int, stage: int, gpus: int) -> int:
    """Bytes per GPU of weights, gradients and Adam states under ZeRO `stage` over `gpus` data-parallel
    GPUs (the module docstring's table)."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"ZeRO stage {stage}: 0, 1, 2 or 3")
    if gpus < 1 or not 0 <= trainable <= params:
        raise ValueError(f"need gpus >= 1 and 0 <= trainable <= params, got {gpus}, {trainable}, {params}")
    weights, grads, states = WEIGHT_BYTES * params, GRAD_BYTES * trainable, OPTIMIZER_BYTES * trainable
    if stage == 0:
        return weights + grads + states
    if stage == 1:
        return weights + grads + states // gpus
    if stage == 2:
        return weights + (grads + states) // gpus
    return (weights + grads + states) // gpus


def activation_bytes(shape: MistralShape, seq_len: int, micro_batch: int, *, checkpointing: bool) -> int:
    """Activation memory of one micro-batch (the module docstring's estimate), 16-bit activations."""
    sbh = seq_len * micro_batch * shape.hidden_size
    if checkpointing:
        return 2 * sbh * shape.num_hidden_layers + 34 * sbh
    return 34 * sbh * shape.num_hidden_layers
