"""Exact parameter counts, tensor by tensor, for dense and mixture-of-experts transformers.

The model is described as a list of :class:`TensorGroup` (one row per kind of tensor, with how many
of them the model has), because the bytes a tensor costs depend on its shape and role: quantization
formats keep embeddings, lm_head and norms in 16-bit, add per-row or per-group scales to linear
weights, and Adafactor factors the second moment of a matrix into rows + columns.

The count follows the Hugging Face transformers implementation built from the model's config.json
(``sum(p.numel() for p in model.parameters())``, tied weights counted once); tests check it to the
parameter for every preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from vramcalc.spec.model import ModelSpec

# Kinds of tensor. "linear" weights are what quantization formats quantize.
LINEAR = "linear"
EMBEDDING = "embedding"
POSITION = "position_embedding"
LM_HEAD = "lm_head"
NORM = "norm"
BIAS = "bias"
ROUTER = "router"
# Parameters that are neither matmul weights nor norms (SSM A/D, attention sinks, conv kernels):
# read from a real model by the exact routes; kept in 16-bit and replicated like norms.
OTHER = "other"
SSM = "ssm"  # state-space mixer vectors and the depthwise conv (A_log, D, dt_bias, conv1d)


@dataclass(frozen=True, slots=True)
class TensorGroup:
    """``count`` tensors of shape (rows, cols); vectors have cols == 1."""

    name: str
    kind: str
    rows: int
    cols: int
    count: int
    expert: bool = (
        False  # an expert weight: only experts_per_token/num_experts are active per token
    )

    @property
    def numel(self) -> int:
        return self.rows * self.cols * self.count

    @property
    def per_tensor_numel(self) -> int:
        return self.rows * self.cols


def _mlp_groups(
    prefix: str,
    spec: ModelSpec,
    inter: int,
    layers: int,
    experts: int = 1,
    expert: bool = False,
    bias: bool | None = None,
) -> list[TensorGroup]:
    """Weights (and biases) of `layers × experts` MLPs of width `inter` (gated: gate, up, down);
    `bias` None: spec.mlp_bias."""
    h, n = spec.hidden_size, layers * experts
    with_bias = spec.mlp_bias if bias is None else bias
    if n == 0:
        return []
    if spec.mlp_kind == "gated":
        groups = [
            TensorGroup(f"{prefix}.gate_proj", LINEAR, inter, h, n, expert),
            TensorGroup(f"{prefix}.up_proj", LINEAR, inter, h, n, expert),
            TensorGroup(f"{prefix}.down_proj", LINEAR, h, inter, n, expert),
        ]
        if with_bias:
            groups += [
                TensorGroup(f"{prefix}.gate_proj.bias", BIAS, inter, 1, n, expert),
                TensorGroup(f"{prefix}.up_proj.bias", BIAS, inter, 1, n, expert),
                TensorGroup(f"{prefix}.down_proj.bias", BIAS, h, 1, n, expert),
            ]
    else:
        groups = [
            TensorGroup(f"{prefix}.fc_in", LINEAR, inter, h, n, expert),
            TensorGroup(f"{prefix}.fc_out", LINEAR, h, inter, n, expert),
        ]
        if with_bias:
            groups += [
                TensorGroup(f"{prefix}.fc_in.bias", BIAS, inter, 1, n, expert),
                TensorGroup(f"{prefix}.fc_out.bias", BIAS, h, 1, n, expert),
            ]
    return groups


def _attention_groups(spec: ModelSpec) -> list[TensorGroup]:
    """Attention projections of all layers: q, k, v, o (fused or not, same count), or MLA's
    compressed projections (transformers DeepseekV3Attention: q_a/q_b with a q_lora_rank norm,
    kv_a_proj_with_mqa to kv_lora_rank + rope, its norm, kv_b_proj, o_proj)."""
    h, L = spec.hidden_size, spec.kv_layers  # a hybrid's state-space layers have no attention
    if not spec.is_mla:
        groups = [
            TensorGroup("layers.attn.q_proj", LINEAR, spec.q_dim, h, L),
            TensorGroup("layers.attn.k_proj", LINEAR, spec.kv_dim, h, L),
            TensorGroup("layers.attn.v_proj", LINEAR, spec.kv_dim, h, L),
            TensorGroup("layers.attn.o_proj", LINEAR, h, spec.q_dim, L),
        ]
        if spec.attention_qkv_bias:
            groups.append(
                TensorGroup("layers.attn.qkv.bias", BIAS, spec.q_dim + 2 * spec.kv_dim, 1, L)
            )
        if spec.attention_out_bias:
            groups.append(TensorGroup("layers.attn.o_proj.bias", BIAS, h, 1, L))
        if spec.qk_norm:
            groups.append(_qk_norm_group(spec))
        if spec.attention_output_gate:  # Qwen3-Next: q_proj doubled into query and gate
            groups.append(TensorGroup("layers.attn.q_proj.gate", LINEAR, spec.q_dim, h, L))
            if spec.attention_qkv_bias:
                groups.append(TensorGroup("layers.attn.q_proj.gate.bias", BIAS, spec.q_dim, 1, L))
        if spec.attention_sinks:  # gpt-oss: one learned sink logit per head and layer
            groups.append(TensorGroup("layers.attn.sinks", BIAS, spec.num_attention_heads, 1, L))
        return groups
    assert spec.kv_lora_rank is not None and spec.qk_rope_head_dim is not None
    assert spec.qk_nope_head_dim is not None and spec.v_head_dim is not None
    heads, r_kv = spec.num_attention_heads, spec.kv_lora_rank
    kv_a = r_kv + spec.qk_rope_head_dim
    v_out = heads * spec.v_head_dim
    groups = []
    if spec.q_lora_rank:
        r_q = spec.q_lora_rank
        groups += [
            TensorGroup("layers.attn.q_a_proj", LINEAR, r_q, h, L),
            TensorGroup("layers.attn.q_a_layernorm", NORM, r_q, 1, L),
            TensorGroup("layers.attn.q_b_proj", LINEAR, spec.q_dim, r_q, L),
        ]
        if spec.attention_qkv_bias:
            groups.append(TensorGroup("layers.attn.q_a_proj.bias", BIAS, r_q, 1, L))
    else:
        groups.append(TensorGroup("layers.attn.q_proj", LINEAR, spec.q_dim, h, L))
    groups += [
        TensorGroup("layers.attn.kv_a_proj_with_mqa", LINEAR, kv_a, h, L),
        TensorGroup("layers.attn.kv_a_layernorm", NORM, r_kv, 1, L),
        TensorGroup(
            "layers.attn.kv_b_proj",
            LINEAR,
            heads * (spec.qk_nope_head_dim + spec.v_head_dim),
            r_kv,
            L,
        ),
        TensorGroup("layers.attn.o_proj", LINEAR, h, v_out, L),
    ]
    if spec.attention_qkv_bias:
        groups.append(TensorGroup("layers.attn.kv_a_proj_with_mqa.bias", BIAS, kv_a, 1, L))
    if spec.attention_out_bias:
        groups.append(TensorGroup("layers.attn.o_proj.bias", BIAS, h, 1, L))
    return groups


def _norm_width(spec: ModelSpec) -> int:
    """Parameters per channel of one norm: weight (+ bias), or none for parameter-free norms."""
    if not spec.norm_affine:
        return 0
    bias = spec.norm_kind == "layernorm" if spec.norm_bias is None else spec.norm_bias
    return 2 if bias else 1  # LayerNorm has weight and bias


def _qk_norm_group(spec: ModelSpec) -> TensorGroup:
    """Norms on q and k of every layer: one head_dim norm each (Qwen3), one per head (Cohere,
    StableLM) or over the whole projection (OLMo-2); LayerNorms with bias double it (Phi-2)."""
    L, d = spec.kv_layers, spec.head_dim  # attention layers only (hybrids)
    count = 2 if spec.qk_norm_bias else 1
    if spec.qk_norm_kind == "per_head":
        return TensorGroup(
            "layers.attn.qk_norm",
            NORM,
            (spec.num_attention_heads + spec.kv_heads) * d,
            1,
            L * count,
        )
    if spec.qk_norm_kind == "full":
        return TensorGroup("layers.attn.qk_norm", NORM, spec.q_dim + spec.kv_dim, 1, L * count)
    return TensorGroup("layers.attn.qk_norm", NORM, d, 1, 2 * L * count)


@lru_cache(maxsize=512)
def tensor_groups(spec: ModelSpec) -> tuple[TensorGroup, ...]:
    """Every parameter tensor of the model, grouped by role and shape."""
    if spec.exact_tensors:  # read from the real model: nothing to derive
        return tuple(
            TensorGroup(t.name, t.kind, t.rows, t.cols, t.count, t.expert)
            for t in spec.exact_tensors
        )
    h, L, V = spec.hidden_size, spec.num_layers, spec.vocab_size
    norm_width = _norm_width(spec)
    groups = [TensorGroup("embed_tokens", EMBEDDING, V, spec.embed_dim, 1)]
    if spec.embedding_norm and norm_width:  # BLOOM word_embeddings_layernorm
        groups.append(TensorGroup("embedding_norm", NORM, h, 1, norm_width))
    if spec.position_embedding == "learned":
        positions = spec.max_position_embeddings + spec.position_offset
        groups.append(TensorGroup("embed_positions", POSITION, positions, h, 1))
    if spec.embed_dim != h:  # OPT-350m projects 512-wide embeddings in and out of the 1024 stream
        groups += [
            TensorGroup("project_in", LINEAR, h, spec.embed_dim, 1),
            TensorGroup("project_out", LINEAR, spec.embed_dim, h, 1),
        ]
    groups += _attention_groups(spec)
    if norm_width:
        groups.append(
            TensorGroup("layers.norms", NORM, h, 1, L * spec.norms_per_layer * norm_width)
        )
    groups += _mlp_groups("layers.mlp", spec, spec.intermediate_size, spec.dense_layers)
    if spec.activation_params_per_layer:  # Apertus xIELU alpha_p, alpha_n: scalars per layer
        groups.append(
            TensorGroup("layers.mlp.act_fn", NORM, spec.activation_params_per_layer, 1, L)
        )
    if spec.is_moe:
        E, moe_layers = spec.num_experts, spec.moe_layers
        groups.append(TensorGroup("layers.moe.router", ROUTER, E, h, moe_layers))
        if spec.router_bias:
            groups.append(TensorGroup("layers.moe.router.bias", BIAS, E, 1, moe_layers))
        groups += _mlp_groups(
            "layers.moe.experts",
            spec,
            spec.expert_intermediate_size,
            moe_layers,
            E,
            expert=True,
            bias=spec.expert_bias,
        )
        if spec.num_shared_experts or spec.shared_expert_intermediate_size:
            shared = spec.shared_expert_intermediate_size or (
                spec.num_shared_experts * spec.expert_intermediate_size
            )
            groups += _mlp_groups("layers.moe.shared_expert", spec, shared, moe_layers)
        if spec.shared_expert_gate:
            groups.append(TensorGroup("layers.moe.shared_expert_gate", ROUTER, 1, h, moe_layers))
    groups += _ssm_groups(spec)
    if spec.final_norm and norm_width:
        groups.append(TensorGroup("final_norm", NORM, h, 1, norm_width))
    if spec.output_head == "scalar":  # reward/value head: nn.Linear(h, 1, bias=False)
        groups.append(TensorGroup("score", LM_HEAD, 1, spec.embed_dim, 1))
    elif not spec.tie_word_embeddings:
        groups.append(TensorGroup("lm_head", LM_HEAD, V, spec.embed_dim, 1))
    if spec.lm_head_bias and spec.output_head == "lm_head":  # Phi-2, GPT-J, CodeGen
        groups.append(TensorGroup("lm_head.bias", BIAS, V, 1, 1))
    return tuple(groups)


# ---- Issue 13 part C: state-space mixers ----------------------------------------------------
def _ssm_groups(spec: ModelSpec) -> list[TensorGroup]:
    """The Mamba mixers of `ssm_layers` layers, as transformers builds them.

    mamba (MambaMixer, JambaMambaMixer): in_proj h → 2·d_inner, depthwise conv1d (d_inner × K),
    x_proj d_inner → dt_rank + 2N, dt_proj dt_rank → d_inner (+ bias), A_log d_inner × N, D,
    out_proj; Jamba adds RMSNorms on dt (dt_rank), B and C (N each).
    mamba2 (Mamba2Mixer, BambaMixer, NemotronHMamba2Mixer): in_proj h → 2·d_inner + 2·G·N + heads,
    conv1d over d_inner + 2·G·N channels, dt_bias, A_log and D per head, a gated RMSNorm of
    d_inner, out_proj.
    """
    n = spec.ssm_layers
    if not n:
        return []
    assert spec.ssm_d_inner is not None and spec.ssm_d_conv is not None
    h, d, N, K = spec.hidden_size, spec.ssm_d_inner, spec.ssm_d_state or 0, spec.ssm_d_conv
    conv = spec.ssm_conv_channels
    groups = []
    if spec.ssm_kind == "short_conv":  # Lfm2ShortConv: in_proj h → 3h (B, C, x), conv, out_proj
        in_out = 3 * d
    elif spec.ssm_kind == "mamba":
        assert spec.ssm_dt_rank is not None
        r = spec.ssm_dt_rank
        in_out = 2 * d
        groups += [
            TensorGroup("layers.ssm.x_proj", LINEAR, r + 2 * N, d, n),
            TensorGroup("layers.ssm.dt_proj", LINEAR, d, r, n),
            TensorGroup("layers.ssm.dt_proj.bias", BIAS, d, 1, n),
            TensorGroup("layers.ssm.A_log", SSM, d, N, n),
            TensorGroup("layers.ssm.D", SSM, d, 1, n),
        ]
        if spec.ssm_inner_norms:
            groups.append(TensorGroup("layers.ssm.dt_b_c_norms", NORM, r + 2 * N, 1, n))
    elif spec.ssm_kind == "gated_deltanet":
        # Qwen3NextGatedDeltaNet: in_proj_qkvz (2·key + 2·value) and in_proj_ba (2·v_heads),
        # conv1d over q, k, v without bias, dt_bias and A_log per value head, a gated RMSNorm of
        # one value head, out_proj
        assert spec.ssm_heads is not None
        in_out = 2 * spec.ssm_n_groups * N + 2 * d + 2 * spec.ssm_heads
        groups.append(TensorGroup("layers.ssm.dt_bias_A_log", SSM, 2 * spec.ssm_heads, 1, n))
        groups.append(TensorGroup("layers.ssm.norm", NORM, d // spec.ssm_heads, 1, n))
    else:
        assert spec.ssm_heads is not None
        in_out = 2 * d + 2 * spec.ssm_n_groups * N + spec.ssm_heads
        groups.append(TensorGroup("layers.ssm.dt_bias_A_log_D", SSM, 3 * spec.ssm_heads, 1, n))
        if spec.ssm_gated_norm:
            groups.append(TensorGroup("layers.ssm.norm", NORM, d, 1, n))
    groups += [
        TensorGroup("layers.ssm.in_proj", LINEAR, in_out, h, n),
        TensorGroup("layers.ssm.conv1d", SSM, conv, K, n),
        TensorGroup("layers.ssm.out_proj", LINEAR, h, d, n),
    ]
    if spec.ssm_conv_bias:
        groups.append(TensorGroup("layers.ssm.conv1d.bias", BIAS, conv, 1, n))
    if spec.ssm_proj_bias:
        groups.append(TensorGroup("layers.ssm.in_proj.bias", BIAS, in_out, 1, n))
    if spec.ssm_proj_bias if spec.ssm_out_bias is None else spec.ssm_out_bias:
        groups.append(TensorGroup("layers.ssm.out_proj.bias", BIAS, h, 1, n))
    return groups


@lru_cache(maxsize=512)
def param_count(spec: ModelSpec) -> int:
    """Total parameters, tied weights counted once (as ``model.parameters()`` does)."""
    return sum(g.numel for g in tensor_groups(spec))


@lru_cache(maxsize=512)
def active_param_count(spec: ModelSpec) -> int:
    """Parameters a token passes through: only experts_per_token of num_experts experts."""
    total = 0
    for g in tensor_groups(spec):
        total += g.numel * spec.experts_per_token // spec.num_experts if g.expert else g.numel
    return total
