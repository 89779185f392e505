"""Frozen pydantic descriptions of what is estimated: the model and the GPU.

A :class:`ModelSpec` describes a decoder-only transformer closely enough to count its parameters
exactly (the same count as the Hugging Face implementation built from the model's config.json) and to
size its activations and KV cache. Derived values (``head_dim``, ``q_dim``) are properties.
"""

from __future__ import annotations

import operator
import weakref
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

MlpKind = Literal["gated", "plain"]
NormKind = Literal["rmsnorm", "layernorm"]
PositionKind = Literal["rotary", "learned", "alibi"]  # alibi: no position parameters (BLOOM, MPT)


class ExactTensor(BaseModel):
    """``count`` parameter tensors of shape (rows, cols) read from the real model (a meta-device
    build of the transformers class, or a checkpoint's tensor headers); ``kind`` is one of the
    kinds in :mod:`vramcalc.spec.params` (linear, embedding, lm_head, norm, bias, router, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    rows: int = Field(gt=0)
    cols: int = Field(gt=0)
    count: int = Field(1, gt=0)
    expert: bool = False


class ModelSpec(BaseModel):
    """Architecture of a decoder-only transformer (dense or mixture of experts)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(description="canonical preset id, e.g. 'llama-2-7b'")
    display_name: str = ""
    hf_id: str = Field("", description="Hugging Face Hub id the values were read from")
    aliases: tuple[str, ...] = ()
    source: str = Field("", description="where the values come from (config.json URL or paper)")
    architecture: str = Field(description="Hugging Face model_type: llama, mistral, gpt2, ...")

    vocab_size: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_kv_heads: int | None = Field(None, gt=0, description="None means MHA (= attention heads)")
    head_dim_override: int | None = Field(None, gt=0, alias="head_dim")
    intermediate_size: int = Field(gt=0)
    mlp_kind: MlpKind = "gated"
    activation: str = "silu"

    attention_qkv_bias: bool = False
    attention_out_bias: bool = False
    mlp_bias: bool = False
    norm_kind: NormKind = "rmsnorm"
    norms_per_layer: int = Field(2, ge=1, description="Gemma-2 has 4 (pre/post attention and MLP)")
    tie_word_embeddings: bool = False
    position_embedding: PositionKind = "rotary"
    max_position_embeddings: int = Field(gt=0)
    output_head: Literal["lm_head", "scalar"] = Field(
        "lm_head",
        description="lm_head: vocabulary logits; scalar: a reward/value head (h×1, no bias), as "
        "transformers' *ForSequenceClassification with num_labels=1 (rlhf.reward_model_spec)",
    )
    sliding_window: int | None = Field(None, gt=0)
    sliding_window_layers: int | None = Field(
        None, ge=0, description="layers that use the window (None: all when a window is set)"
    )

    # Mixture of experts (num_experts == 0: dense model).
    num_experts: int = Field(0, ge=0)
    experts_per_token: int = Field(0, ge=0)
    moe_intermediate_size: int | None = Field(None, gt=0)
    num_shared_experts: int = Field(0, ge=0)
    shared_expert_intermediate_size: int | None = Field(None, gt=0)
    shared_expert_gate: bool = False
    first_dense_layers: int = Field(0, ge=0, description="leading layers with a dense MLP")

    # Optional architecture details (defaults describe the Llama layout).
    qk_norm: bool = Field(False, description="RMSNorm of head_dim on q and k (Qwen3, Gemma-3)")
    final_norm: bool = Field(True, description="a norm before lm_head (OPT-350m has none)")
    position_offset: int = Field(0, ge=0, description="extra learned positions (OPT: 2)")
    word_embed_proj_dim: int | None = Field(
        None, gt=0, description="embedding width when it differs from hidden (OPT-350m)"
    )
    # Multi-head latent attention (DeepSeek-V2/V3); kv_lora_rank set means MLA.
    q_lora_rank: int | None = Field(None, gt=0, description="MLA query compression rank")
    kv_lora_rank: int | None = Field(None, gt=0, description="MLA key/value latent width")
    qk_rope_head_dim: int | None = Field(None, gt=0, description="MLA rotary part of a head")
    qk_nope_head_dim: int | None = Field(None, gt=0, description="MLA non-rotary part of a head")
    v_head_dim: int | None = Field(None, gt=0, description="MLA value head width")

    # Exact inventory from the real model. When set, these replace what the fields above derive:
    # the tensors (params.tensor_groups), the cache elements per token summed over all layers and
    # the fixed per-sequence cache state (state-space conv + SSM state).
    exact_tensors: tuple[ExactTensor, ...] = Field(
        (), description="every parameter tensor, as built by the model's own code"
    )
    kv_elements_per_token: int | None = Field(
        None, ge=0, description="cache elements one token adds, all layers (None: from the fields)"
    )
    state_elements_per_sequence: int = Field(
        0, ge=0, description="fixed cache elements per sequence (SSM conv + state), all layers"
    )

    # ---- dense-family details (hf_config/dense.py; defaults describe the Llama layout) ---------
    parallel_block: bool = Field(
        False,
        description="attention and MLP read the same normed input and add to the residual together "
        "(GPT-J, CodeGen, Phi-2, Cohere); one norm per layer. Parameters are exact; the activation "
        "model counts the two branches as if sequential (approximate for these blocks)",
    )
    lm_head_bias: bool = Field(False, description="lm_head has a bias of vocab_size (Phi-2, GPT-J)")
    norm_bias: bool | None = Field(
        None, description="norms carry a bias (None: LayerNorm yes, RMSNorm no); Cohere: no"
    )
    norm_affine: bool = Field(
        True, description="False: parameter-free norms (OLMo-1's non-parametric LayerNorm)"
    )
    embedding_norm: bool = Field(
        False,
        description="a norm right after the token embedding (BLOOM word_embeddings_layernorm)",
    )
    qk_norm_kind: Literal["head", "per_head", "full"] = Field(
        "head",
        description="with qk_norm: 'head' one head_dim norm shared by all heads of q and of k "
        "(Qwen3); 'per_head' one per head (Cohere, StableLM: (heads + kv_heads) × head_dim); "
        "'full' over the whole projection (OLMo-2: q_dim + kv_dim)",
    )
    qk_norm_bias: bool = Field(False, description="the q/k norms are LayerNorms with bias (Phi-2)")
    activation_params_per_layer: int = Field(
        0, ge=0, le=64, description="learned scalars of the MLP activation (Apertus xIELU: 2)"
    )

    # Architecture not mapped, read as a Llama-style decoder because the user asked for it
    # (--assume-llama): every figure derived from this spec is a rough estimate, labelled as such,
    # with a widened band and no "fits" verdict (vramcalc.core.results.ROUGH_BAND_FACTOR).
    assumed_architecture: str | None = Field(
        None, description="the unmapped model_type read as Llama under --assume-llama"
    )

    # ---- Issue 13 part C: mixture-of-experts and attention details (defaults keep the layouts
    # above; each field names the transformers modeling code that needs it) --------------------
    expert_bias: bool | None = Field(
        None, description="biases on the experts' projections (gpt-oss); None: as mlp_bias"
    )
    router_bias: bool = Field(
        False,
        description="a learned per-expert vector beside the router weight (gpt-oss router bias, "
        "ERNIE-4.5 e_score_correction_bias)",
    )
    attention_sinks: bool = Field(False, description="one learned logit per head (gpt-oss)")
    # (lm_head_bias, norm_bias and qk_norm_kind of the dense-family block serve PhiMoE,
    # ERNIE-4.5, DBRX and OLMoE too)

    # ---- Issue 13 part C: cache layout of hybrid models (see vramcalc.core.kv_cache) ---------------
    attention_layers: int | None = Field(
        None,
        ge=0,
        description="layers with attention and a KV cache (None: all); the others of a hybrid "
        "(Mamba, gated DeltaNet) keep a fixed per-sequence state instead",
    )

    # State-space layers (Mamba, arXiv 2312.00752; Mamba-2, arXiv 2405.21060; Jamba,
    # arXiv 2403.19887): their tensors and the fixed per-sequence state they cache.
    ssm_kind: Literal["mamba", "mamba2", "gated_deltanet", "short_conv"] | None = Field(
        None,
        description="mamba: selective scan (x_proj, dt_proj); mamba2: SSD (heads, groups); "
        "gated_deltanet: Qwen3-Next linear attention (groups = key heads, N = key head dim, "
        "heads = value heads, d_inner = value heads × value head dim); short_conv: LFM2's gated "
        "depthwise convolution (d_inner = hidden, no recurrent state)",
    )
    ssm_layers: int = Field(0, ge=0, description="layers with a state-space mixer")
    ssm_d_inner: int | None = Field(None, gt=0, description="expand × hidden (Mamba's E·D)")
    ssm_d_state: int | None = Field(None, gt=0, description="SSM state size N per channel")
    ssm_d_conv: int | None = Field(None, gt=0, description="causal conv1d kernel width")
    ssm_n_groups: int = Field(1, ge=1, description="Mamba-2 groups sharing B and C")
    ssm_heads: int | None = Field(None, gt=0, description="Mamba-2 heads (one dt, A, D each)")
    ssm_dt_rank: int | None = Field(None, gt=0, description="Mamba dt projection rank")
    ssm_proj_bias: bool = Field(False, description="biases on the mixer's in_proj and out_proj")
    ssm_out_bias: bool | None = Field(
        None, description="a bias on out_proj (None: as ssm_proj_bias; Falcon-H1 projectors_bias)"
    )
    ssm_gated_norm: bool = Field(True, description="Mamba-2's gated RMSNorm of d_inner")
    ssm_conv_bias: bool = Field(True, description="a bias on the depthwise conv1d")
    ssm_inner_norms: bool = Field(False, description="Jamba's RMSNorms on dt, B and C")
    attention_output_gate: bool = Field(
        False, description="q_proj also yields a sigmoid output gate (Qwen3-Next: 2 × q_dim)"
    )
    mlp_layers: int | None = Field(
        None, ge=0, description="layers with a feed-forward block (None: all; Mamba has none)"
    )

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.num_attention_heads % self.kv_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_kv_heads ({self.kv_heads})"
            )
        if (
            self.head_dim_override is None
            and self.kv_lora_rank is None
            and self.hidden_size % self.num_attention_heads
        ):
            raise ValueError(
                "hidden_size must divide by num_attention_heads unless head_dim is set"
            )
        if self.num_experts and not 0 < self.experts_per_token <= self.num_experts:
            raise ValueError("experts_per_token must be between 1 and num_experts")
        if self.first_dense_layers > self.num_layers:
            raise ValueError("first_dense_layers exceeds num_layers")
        if self.sliding_window_layers is not None and self.sliding_window_layers > self.num_layers:
            raise ValueError("sliding_window_layers exceeds num_layers")
        if self.attention_layers is not None and self.attention_layers > self.num_layers:
            raise ValueError("attention_layers exceeds num_layers")
        if self.ssm_layers > self.num_layers or (self.mlp_layers or 0) > self.num_layers:
            raise ValueError("ssm_layers and mlp_layers cannot exceed num_layers")
        ssm = (self.ssm_kind, self.ssm_d_inner, self.ssm_d_conv)
        if self.ssm_layers and any(v is None for v in ssm):
            raise ValueError("state-space layers need ssm_kind, ssm_d_inner and ssm_d_conv")
        if self.ssm_layers and self.ssm_kind != "short_conv" and self.ssm_d_state is None:
            raise ValueError("state-space layers need ssm_d_state")
        if self.ssm_layers and self.ssm_kind not in ("mamba", "short_conv") and not self.ssm_heads:
            raise ValueError("Mamba-2 and gated DeltaNet layers need ssm_heads")
        if self.ssm_layers and self.ssm_kind == "mamba" and self.ssm_dt_rank is None:
            raise ValueError("Mamba layers need ssm_dt_rank")
        mla = (self.kv_lora_rank, self.qk_rope_head_dim, self.qk_nope_head_dim, self.v_head_dim)
        if any(v is not None for v in mla) and any(v is None for v in mla):
            raise ValueError(
                "MLA needs kv_lora_rank, qk_rope_head_dim, qk_nope_head_dim and v_head_dim together"
            )
        return self

    def __hash__(self) -> int:
        """pydantic's hash of the frozen fields, computed once per instance: the estimators' caches
        hash the same spec several times per estimate, and the ~70 fields (exact tensors too) make
        each hash cost microseconds. Kept beside the instance, keyed by its id and checked by a
        weak reference, not in its ``__dict__`` or private attributes: equality, copies
        (``model_copy(update=...)`` makes a new instance), pickling and dumps are untouched."""
        hit = _HASHES.get(id(self))
        if hit is not None and hit[0]() is self:
            return hit[1]
        value = _field_hash(self)
        key = id(self)
        _HASHES[key] = (weakref.ref(self, lambda _ref: _forget_hash(key, _ref)), value)
        return value

    # ---- derived values -------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_attention_heads

    @property
    def is_mla(self) -> bool:
        """Multi-head latent attention (DeepSeek-V2/V3)."""
        return self.kv_lora_rank is not None

    @property
    def head_dim(self) -> int:
        if self.is_mla:
            assert self.qk_nope_head_dim is not None and self.qk_rope_head_dim is not None
            return self.qk_nope_head_dim + self.qk_rope_head_dim
        return self.head_dim_override or self.hidden_size // self.num_attention_heads

    @property
    def kv_cache_width(self) -> int:
        """Elements cached per token per layer: K and V (2·kv_heads·head_dim), or for MLA the
        compressed latent plus the shared rotary key, kv_lora_rank + qk_rope_head_dim (DeepSeek-V2,
        arXiv 2405.04434, §2.1; as vLLM and SGLang cache it)."""
        if self.is_mla:
            assert self.kv_lora_rank is not None and self.qk_rope_head_dim is not None
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.kv_dim

    @property
    def embed_dim(self) -> int:
        """Width of the token embedding (and of lm_head's input)."""
        return self.word_embed_proj_dim or self.hidden_size

    @property
    def q_dim(self) -> int:
        """Width of the query projection output (heads × head_dim; ≠ hidden for Gemma)."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of each of the key and value projection outputs."""
        return self.kv_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def moe_layers(self) -> int:
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    @property
    def dense_layers(self) -> int:
        return self.ffn_layers - self.moe_layers

    @property
    def expert_intermediate_size(self) -> int:
        return self.moe_intermediate_size or self.intermediate_size

    @property
    def windowed_layers(self) -> int:
        """Layers whose KV cache the sliding window caps."""
        if self.sliding_window is None:
            return 0
        return self.num_layers if self.sliding_window_layers is None else self.sliding_window_layers

    @property
    def kv_layers(self) -> int:
        """Layers that cache keys and values (all but a hybrid's state-space layers)."""
        return self.num_layers if self.attention_layers is None else self.attention_layers

    @property
    def state_layers(self) -> int:
        """Layers that keep a fixed recurrent state (a hybrid's Mamba layers)."""
        return self.ssm_layers

    @property
    def ssm_conv_channels(self) -> int:
        """Channels of the causal conv1d: d_inner, plus B and C for Mamba-2 (2·groups·N)."""
        if self.ssm_d_inner is None:
            return 0
        if self.ssm_kind in ("mamba", "short_conv") or self.ssm_d_state is None:
            return self.ssm_d_inner
        return self.ssm_d_inner + 2 * self.ssm_n_groups * self.ssm_d_state

    @property
    def ssm_state_elements_per_layer(self) -> int:
        """One layer's cached state per sequence: the conv window, channels × (d_conv) (as
        transformers' cache keeps it), and the recurrent state d_inner × N (Mamba §3.4:
        (B, D, N) per layer; Mamba-2 §7: heads × head_dim × N, the same count)."""
        if not self.ssm_layers or self.ssm_d_conv is None or self.ssm_d_inner is None:
            return 0
        recurrent = self.ssm_d_inner * self.ssm_d_state if self.ssm_d_state else 0
        return self.ssm_conv_channels * self.ssm_d_conv + recurrent

    @property
    def state_elements(self) -> int:
        """Fixed cache elements per sequence (conv + SSM state over all state-space layers): the
        exact route's figure when it set one, else derived from the ssm_* fields."""
        if self.state_elements_per_sequence:
            return self.state_elements_per_sequence
        return self.ssm_layers * self.ssm_state_elements_per_layer

    @property
    def ffn_layers(self) -> int:
        """Layers with a feed-forward block (dense or mixture of experts)."""
        return self.num_layers if self.mlp_layers is None else self.mlp_layers

    @property
    def output_width(self) -> int:
        """Width of the model's output per token: the vocabulary, or 1 for a scalar head."""
        return 1 if self.output_head == "scalar" else self.vocab_size

    @property
    def head_numel(self) -> int:
        """Elements of the output projection: output width × embedding width (the embedding
        matrix itself when tied)."""
        return self.output_width * self.embed_dim

    @property
    def title(self) -> str:
        return self.display_name or self.name


Interconnect = Literal["nvlink", "pcie", "infinity-fabric"]
Generation = Literal["volta", "turing", "ampere", "ada", "hopper", "blackwell", "cdna2", "cdna3"]


class GPUSpec(BaseModel):
    """A GPU: memory for "does it fit", and (optional) peaks, bandwidth, power and price for cost.

    ``memory_mib`` is what ``nvidia-smi`` reports as total memory, in MiB (2^20 bytes): vendors print
    "80 GB" for an H100 whose nvidia-smi total is 81,559 MiB. Peak throughputs are *dense* tensor
    core figures (datasheets often print the 2:4 structured-sparsity figure, twice as large, with an
    asterisk); ``memory_bandwidth_gbps`` and ``interconnect_gbps`` are 10^9 bytes per second, the
    interconnect figure being the vendor's (bidirectional, all links) number. Every value other
    than the name comes with ``source``. Prices are not part of the GPU file: they come from one
    price set (presets/prices/, one market and date each; `--price-source`) or the user's GPU file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str
    display_name: str = ""
    aliases: tuple[str, ...] = ()
    memory_mib: int = Field(gt=0, description="total memory as nvidia-smi reports it, MiB")
    source: str = ""
    vendor: str = ""
    generation: Generation | None = Field(None, description="architecture; sets the default MFU")
    peak_fp32_tflops: float | None = Field(None, gt=0, description="dense FP32 (non-tensor)")
    peak_tf32_tflops: float | None = Field(None, gt=0, description="dense TF32 tensor")
    peak_bf16_tflops: float | None = Field(None, gt=0, description="dense BF16 tensor, fp32 acc.")
    peak_fp16_tflops: float | None = Field(None, gt=0, description="dense FP16 tensor, fp32 acc.")
    peak_fp8_tflops: float | None = Field(None, gt=0, description="dense FP8 tensor")
    peak_int8_tops: float | None = Field(None, gt=0, description="dense INT8 tensor, TOPS")
    memory_bandwidth_gbps: float | None = Field(None, gt=0, description="memory, 10^9 B/s")
    interconnect: Interconnect | None = None
    interconnect_gbps: float | None = Field(None, gt=0, description="GPU-GPU, 10^9 B/s, bidir.")
    tdp_watts: float | None = Field(None, gt=0, description="board power / TDP")
    # one GPU for one hour; a GPU file may still use its former name, price_usd_per_hour
    usd_per_gpu_hour: float | None = Field(
        None,
        ge=0,
        validation_alias=AliasChoices("usd_per_gpu_hour", "price_usd_per_hour"),
        description="price of one GPU for one hour, from a price set or a GPU file",
    )
    price_market: str = Field("", description="on-demand, spot, community or reserved")
    price_date: str = Field("", description="when the price was read (YYYY-MM-DD)")
    price_source: str = ""

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * 1024**2

    @property
    def title(self) -> str:
        return self.display_name or self.name

    def peak_tflops(self, dtype: str) -> float | None:
        """Dense peak for `dtype` (fp32, tf32, bf16, fp16, fp8, int8); None when not listed."""
        if dtype == "int8":
            return self.peak_int8_tops
        value: float | None = getattr(self, f"peak_{dtype}_tflops", None)
        return value


# ModelSpec.__hash__'s memo: id -> (weak reference, hash). An entry leaves with its instance.
_HASHES: dict[int, tuple[weakref.ref[ModelSpec], int]] = {}


def _forget_hash(key: int, ref: weakref.ref[Any]) -> None:
    hit = _HASHES.get(key)
    if hit is not None and hit[0] is ref:
        del _HASHES[key]


_FIELDS = operator.itemgetter(*ModelSpec.model_fields)
_MISSING = object()


def _field_hash(spec: ModelSpec) -> int:
    """The hash pydantic gives a frozen model: of its field values in order (a field missing after
    ``model_construct`` counts as a sentinel)."""
    try:
        return hash(_FIELDS(spec.__dict__))
    except KeyError:
        return hash(tuple(spec.__dict__.get(k, _MISSING) for k in ModelSpec.model_fields))
