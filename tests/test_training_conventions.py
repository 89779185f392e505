"""Training-stack conventions (vramcalc.spec.conventions) in the estimator, each by hand.

Llama-2-7B figures used throughout: h = 4096, I = 11,008, V = 32,000, 32 layers; all-linear LoRA at
r = 8 trains 8·(3·(4096+4096) + (4096+4096) + 2·(4096+11008) + (11008+4096)) · 32 = 19,988,480
parameters (tests/test_explain_formulas.py).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vramcalc.core import lora
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError
from vramcalc.spec.conventions import DEFAULT_CONVENTIONS, Conventions
from vramcalc.spec.model import ModelSpec

N_LORA = 19_988_480
V, H = 32_000, 4096


def _est(conv: Conventions | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return estimate_training("llama-2-7b", conventions=conv, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"method": "lora", "seq_len": 512},
        {"method": "qlora", "grad_checkpointing": "full", "seq_len": 2048},
        {"zero": 3, "num_gpus": 8, "seq_len": 1024},
    ],
)
def test_default_conventions_change_nothing(kw: dict[str, object]) -> None:
    none = _est(None, **kw)
    default = _est(DEFAULT_CONVENTIONS, **kw)
    fresh = _est(Conventions(), **kw)
    assert none.model_dump() == default.model_dump() == fresh.model_dump()
    assert "conventions" not in none.inputs


def test_bf16_adapters_states_follow_the_adapter_dtype() -> None:
    # LitGPT / torchtune keep adapters in the model's bf16: weights 2 B, gradients 2 B, AdamW's two
    # states 2 × 2 B per adapter parameter (torch keeps state in the parameter's dtype); PEFT: 4, 4, 8
    kw = {"method": "lora", "seq_len": 512, "grad_accum": 2}
    peft, bf16 = _est(None, **kw), _est(Conventions(adapter_dtype="bf16"), **kw)
    assert (peft.component("adapter_weights"), bf16.component("adapter_weights")) == (
        4 * N_LORA,
        2 * N_LORA,
    )
    assert (peft.component("gradients"), bf16.component("gradients")) == (4 * N_LORA, 2 * N_LORA)
    assert (peft.component("optimizer_state"), bf16.component("optimizer_state")) == (
        8 * N_LORA,
        4 * N_LORA,
    )
    assert _est(Conventions(adapter_dtype="model"), **kw).component("adapter_weights") == 2 * N_LORA


def test_bf16_adapters_save_no_input_copies() -> None:
    # PEFT's fp32 adapters cast each adapted module's input: 7 bf16 copies per layer (autocast casts
    # them back), (6·4096 + 11008) × 2 B = 71,168 B per token, plus lora_A's outputs 7·8·2 = 112.
    # bf16 adapters read the layer's own tensors: q,k,v share the attention input, gate/up the MLP
    # input, so the streams are saved once: (3·4096 + 11008) × 2 = 46,592, plus the same 112.
    # Difference 24,576 B per token per layer, × 32 layers × 4·512 tokens = 1,610,612,736 B.
    kw = {"method": "lora", "seq_len": 512, "batch_size": 4}
    peft, bf16 = _est(None, **kw), _est(Conventions(adapter_dtype="bf16"), **kw)
    assert peft.phase == bf16.phase == "backward start (loss)"
    assert peft.component("activations") - bf16.component("activations") == 32 * 2048 * 24_576


def test_fused_qkv_adapter_counts_like_litgpt() -> None:
    # litgpt/lora.py LoRAQKVLinear: lora_A (r·3) × h, lora_B (q + 2·kv) × r: per layer
    # 8·3·4096 + (4096 + 2·4096)·8 = 196,608, the same as three separate pairs; with dropout it is
    # one module: one dropout output (4096 × 2 B under autocast) and mask (4096 × 1 B) instead of
    # three: 2 × 12,288 B per token per layer less, × 32 layers × 512 tokens = 402,653,184
    kw = {"method": "lora", "seq_len": 512, "lora_dropout": 0.1}
    sep, fused = _est(None, **kw), _est(Conventions(fused_qkv_adapter=True), **kw)
    assert fused.inputs["trainable_params"] == sep.inputs["trainable_params"] == N_LORA
    assert sep.component("activations") - fused.component("activations") == 32 * 512 * 24_576


def test_fused_qkv_adapter_shapes() -> None:
    import vramcalc
    from vramcalc.core import lora

    spec = vramcalc.get_model("llama-2-7b")
    groups = lora.adapter_groups(spec, frozenset({"q", "v"}), 8, fused_qkv=True)
    qkv = {g.name.rsplit(".", 1)[-1]: (g.rows, g.cols) for g in groups if ".qkv." in g.name}
    # q and v enabled: lora_A 2·8 × 4096, lora_B (4096 + 4096) × 8 (LoRAQKVLinear's qkv_shapes)
    assert qkv == {"lora_A": (16, 4096), "lora_B": (8192, 8)}


def test_quantized_lm_head() -> None:
    # LitGPT's QLoRA quantizes lm_head: V × h = 131,072,000 values in NF4 with double quant =
    # 65,536,000 packed + 64 code + 2,048,000 absmax + 4·8,000 + 4 + 1,024 = 67,617,092 B instead of
    # fp32 4 × 131,072,000 = 524,288,000: 456,670,908 B less. Its dequantized copy (V × h × 2 B =
    # 262,144,000) is then the largest dequant buffer (down_proj's: 11,008 × 4096 × 2 = 90,177,536)
    plain, litgpt = (
        _est(None, method="qlora", seq_len=512),
        _est(Conventions(quantized_lm_head=True), method="qlora", seq_len=512),
    )
    assert plain.component("weights") - litgpt.component("weights") == 456_670_908
    assert plain.component("dequant_buffer") == 90_177_536
    assert litgpt.component("dequant_buffer") == 262_144_000


@pytest.mark.parametrize(
    ("loss", "chunks", "expected"),
    [
        # 4 × 1024 = 4096 tokens: fp32 log-softmax + two gradients, 12 B × 32,000 per token
        ("standard", 8, 4096 * 12 * V),
        # torchtune chunked CE: every chunk's saved fp32 log-softmax (4 B) + one chunk's two
        # gradients (8 B): 4096·4·32,000 + 512·8·32,000 = 655,360,000
        ("chunked", 8, 4096 * 4 * V + 512 * 8 * V),
        ("chunked", 1, 4096 * 12 * V),
        # Liger fused linear + CE: chunk of next_pow2(ceil(4096 / ceil(32,000 / 4096))) = 512 rows
        ("fused", 8, 512 * 12 * V),
    ],
)
def test_loss_implementations(loss: str, chunks: int, expected: int) -> None:
    conv = Conventions(loss=loss, loss_chunks=chunks)  # type: ignore[arg-type]
    est = _est(conv, method="lora", seq_len=1024, batch_size=4)
    assert est.phase == "backward start (loss)"
    assert est.component("logits_buffer") == expected


def test_activation_offload_keeps_two_layers_on_the_gpu() -> None:
    # checkpointed LoRA: each layer keeps its bf16 input, 2048 tok × 4096 × 2 B = 16,777,216 B;
    # offloaded, the GPU holds 2 of the 32 (in flight), the host the other 30 = 503,316,480 B;
    # the head's saved tensors stay (final norm, frozen: 4h + 4 = 16,388 B per token; its weight
    # multiply keeps no normalised copy)
    conv = Conventions(activation_offload=True)
    est = _est(conv, method="lora", seq_len=2048, grad_checkpointing="full")
    assert est.host_activation_bytes == 30 * 16_777_216
    assert est.phase == "backward start (loss)"
    assert est.component("activations") == 2 * 16_777_216 + 2048 * 16_388
    plain = _est(None, method="lora", seq_len=2048, grad_checkpointing="full")
    assert plain.component("activations") - est.component("activations") == 30 * 16_777_216


def test_optimizer_in_backward_holds_one_gradient() -> None:
    # full fine-tune, short sequence: with a separate step the peak is optimizer.step() (fp32
    # weights 4Ψ + gradients 4Ψ + Adam 8Ψ + foreach buffer 4Ψ). Stepping in backward there is no
    # step moment, no full gradient buffer and no foreach buffer: at most the largest tensor's
    # gradient, the embedding / lm_head 32,000 × 4096 × 4 B = 524,288,000, is held at a time
    psi = 6_738_415_616
    plain = _est(None, seq_len=128)
    assert plain.phase == "optimizer step" and plain.component("gradients") == 4 * psi
    est = _est(Conventions(optimizer_in_backward=True), seq_len=128)
    assert est.phase != "optimizer step"
    assert est.component("gradients") in (0, V * H * 4)
    assert est.component("optimizer_temporaries") == 0
    assert plain.total_bytes - est.total_bytes > 4 * psi
    with pytest.raises(VramcalcError, match="grad-accum"):
        _est(Conventions(optimizer_in_backward=True), grad_accum=4)


def test_paged_optimizer_is_spillable() -> None:
    # paged AdamW over r=64 adapters: the state (2 × 4 B × 159,907,840) can page to the host
    est = _est(Conventions(paged_optimizer=True), method="qlora", lora_rank=64, seq_len=512)
    assert est.spillable_bytes == est.component("optimizer_state") == 8 * 159_907_840
    assert any("paged" in a for a in est.assumptions)
    assert _est(None, method="qlora", lora_rank=64, seq_len=512).spillable_bytes == 0


def test_old_bitsandbytes_keeps_4bit_inputs() -> None:
    # bitsandbytes < 0.43.2 (before PR #1270) saved every 4-bit linear's input: the q/k/v input 2h,
    # o_proj's 2·q, the MLP input 2h and down_proj's 2·I = 46,592 B per token per layer come back
    kw = {"method": "qlora", "seq_len": 512}
    new, old = _est(None, **kw), _est(Conventions(bnb_keeps_4bit_inputs=True), **kw)
    assert old.component("activations") - new.component("activations") == 32 * 512 * 46_592
    # a 16-bit LoRA base is not bitsandbytes: unchanged
    lora_kw = {"method": "lora", "seq_len": 512}
    assert _est(Conventions(bnb_keeps_4bit_inputs=True), **lora_kw).component(
        "activations"
    ) == _est(None, **lora_kw).component("activations")


def test_compile_and_packing_are_stated_not_modelled() -> None:
    plain = _est(None, seq_len=512)
    est = _est(Conventions(compile=True, packing=True), seq_len=512)
    assert est.total_bytes == plain.total_bytes
    assert any("torch.compile: not modelled" in a for a in est.assumptions)
    assert any("packing: not modelled" in a for a in est.assumptions)


def test_qlora_load_peak_by_hand() -> None:
    # PEFT's prepare_model_for_kbit_training upcasts the non-quantized tensors to fp32 one by one;
    # upcasting the lm_head (or embedding) holds its bf16 original, 131,072,000 × 2 B, beside the
    # final weights (quantized linears + fp32 rest): load = weights + 262,144,000 + CUDA context
    est = _est(None, method="qlora", seq_len=512)
    assert est.load_peak_bytes == est.component("weights") + 262_144_000 + 524_288_000
    assert sum(c.bytes for c in est.load_components) == est.load_peak_bytes
    assert est.model_dump()["load_peak_bytes"] == est.load_peak_bytes  # JSON carries it


def test_load_peak_decides_the_verdict_when_larger() -> None:
    # a tiny step (r=1, 8 tokens, SGD) needs less than loading: the verdict uses the load peak
    kw = {"method": "qlora", "lora_rank": 1, "seq_len": 8, "optimizer": "sgd"}
    est = _est(None, **kw)
    assert est.load_peak_bytes > est.total_bytes
    between = (est.total_bytes + est.load_peak_bytes) / 2 / 2**30
    fit = _est(None, gpu_mem_gib=between, **kw).gpu
    assert fit is not None and not fit.fits and fit.verdict == "does not fit"


def test_conventions_must_be_a_conventions_value() -> None:
    with pytest.raises(VramcalcError, match="Conventions"):
        estimate_training("llama-2-7b", conventions={"loss": "fused"})  # type: ignore[arg-type]


# ---- invariants (hypothesis) ------------------------------------------------------------------

_MODELS = st.sampled_from(["llama-2-7b", "gpt2", "gemma-2-9b", "mixtral-8x7b"])


@settings(max_examples=25, deadline=None)
@given(
    model=_MODELS,
    batch=st.integers(1, 8),
    seq=st.sampled_from([128, 512, 1024]),
    method=st.sampled_from(["full", "lora", "qlora"]),
    chunks=st.integers(1, 64),
)
def test_cheaper_losses_never_hold_more_logits(
    model: str, batch: int, seq: int, method: str, chunks: int
) -> None:
    kw = {"batch_size": batch, "seq_len": seq, "method": method}
    logits = [
        estimate_training(
            model, conventions=Conventions(loss=loss, loss_chunks=chunks), **kw
        ).total_bytes
        for loss in ("standard", "chunked", "fused")
    ]
    assert logits[0] >= logits[1] >= logits[2]


@settings(max_examples=25, deadline=None)
@given(
    model=_MODELS,
    batch=st.integers(1, 8),
    seq=st.sampled_from([128, 512, 1024]),
    ckpt=st.sampled_from(["none", "full"]),
    method=st.sampled_from(["full", "lora"]),
)
def test_offload_and_optimizer_in_backward_never_add_gpu_memory(
    model: str, batch: int, seq: int, ckpt: str, method: str
) -> None:
    kw = {"batch_size": batch, "seq_len": seq, "grad_checkpointing": ckpt, "method": method}
    base = estimate_training(model, **kw)  # type: ignore[arg-type]
    off = estimate_training(model, conventions=Conventions(activation_offload=True), **kw)  # type: ignore[arg-type]
    oib = estimate_training(model, conventions=Conventions(optimizer_in_backward=True), **kw)  # type: ignore[arg-type]
    assert off.total_bytes <= base.total_bytes
    assert oib.total_bytes <= base.total_bytes
    # what left the GPU is on the host: the saved activations are conserved
    assert off.host_activation_bytes >= 0
    for est in (base, off, oib):
        assert est.total_bytes == sum(c.bytes for c in est.components)


def _saved_loss_bytes(chunks: int) -> int:
    """Bytes autograd saves from bf16 logits to the loss (unique storages), for cross-entropy
    over `chunks` slices each upcast on its own (torchtune CEWithChunkedOutputLoss) or whole."""
    torch = pytest.importorskip("torch")
    tokens, vocab = 64, 128
    logits = torch.randn(tokens, vocab, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, vocab, (tokens,))
    seen: dict[int, int] = {}

    def pack(t: object) -> object:
        if t.dtype.is_floating_point and t.dim() == 2 and t.shape[-1] == vocab:  # type: ignore[attr-defined]
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()  # type: ignore[attr-defined]
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        total = sum(
            torch.nn.functional.cross_entropy(x.float(), y, reduction="sum")
            for x, y in zip(logits.chunk(chunks), labels.chunk(chunks), strict=True)
        )
    assert total is not None
    return sum(seen.values())


@pytest.mark.parametrize("chunks", [1, 4, 8])
def test_chunked_loss_keeps_every_chunks_log_softmax(chunks: int) -> None:
    # what chunked cross-entropy cannot free: each chunk's fp32 log-softmax output is saved for
    # backward, 64 tokens × 128 × 4 B = 32,768 B whatever the chunk count (the 4 B per value the
    # chunked term keeps whole); only the gradient buffers of backward are per chunk
    assert _saved_loss_bytes(chunks) == 64 * 128 * 4


def test_kbit_prep_upcast_is_a_convention() -> None:
    # Llama-2-7B QLoRA: the non-quantized tensors are the embedding and lm_head (32,000 × 4096
    # each = 131,072,000) and 65 RMSNorm weights × 4096 = 266,240 → 262,410,240 values. PEFT's
    # prepare_model_for_kbit_training keeps them at 4 B, torchtune/LitGPT/Unsloth at 2 B:
    # 262,410,240 × 2 B = 524,820,480 B less, and no fp32-upcast load moment
    hf = _est(None, method="qlora", seq_len=512)
    tt = _est(Conventions(kbit_prep_upcasts_to_fp32=False), method="qlora", seq_len=512)
    assert hf.component("weights") - tt.component("weights") == 524_820_480
    # its load peak is the quantizing moment: linears + the rest at 2 B + the largest linear's
    # 16-bit copy (no fp32 upcast moment), below hf's
    assert "its 16-bit copy while quantized" in tt.load_components[0].formula
    assert tt.load_peak_bytes < hf.load_peak_bytes


def test_compiled_chunked_loss_keeps_bf16_chunks() -> None:
    # torchtune compile_loss: 4 × 1024 = 4096 tokens, 8 chunks of 512: every chunk's bf16 logits
    # 4096·2·32,000 + one chunk's bf16 gradient 512·2·32,000 + 8 B per token (row max, lse)
    # = 262,144,000 + 32,768,000 + 32,768 = 294,944,768 (eager: 655,360,000)
    conv = Conventions(loss="chunked", loss_chunks=8, compile=True)
    est = _est(conv, method="lora", seq_len=1024, batch_size=4)
    assert est.phase == "backward start (loss)"
    assert est.component("logits_buffer") == 4096 * 2 * V + 512 * 2 * V + 4096 * 8 == 294_944_768


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_compiled_cross_entropy_saves_its_bf16_input() -> None:
    """What torchtune's compute_cross_entropy (logits.float() + F.cross_entropy) saves for
    backward, measured with saved-tensor hooks: eager the fp32 log-softmax (4 B per value),
    compiled its bf16 input (2 B per value) and two fp32 values per row."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    def ce(logits: object, labels: object) -> object:
        return F.cross_entropy(logits.float(), labels, reduction="sum")  # type: ignore[attr-defined]

    T, vocab = 64, 1000

    def saved(fn: object) -> dict[object, int]:
        x = torch.randn(T, vocab, dtype=torch.bfloat16, requires_grad=True)
        seen: dict[object, int] = {}

        def pack(t: object) -> object:
            if t.is_floating_point():  # type: ignore[attr-defined]
                seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()  # type: ignore[attr-defined]
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(x, torch.randint(0, vocab, (T,)))  # type: ignore[operator]
        return seen

    eager = saved(ce)
    assert max(eager.values()) == T * vocab * 4  # the fp32 log-softmax
    try:
        compiled = saved(torch.compile(ce))
    except Exception as exc:  # no C++ toolchain for inductor here
        pytest.skip(f"torch.compile unavailable: {type(exc).__name__}")
    # bf16 input 64 × 1000 × 2 B + 2 × 64 rows × 4 B (row max and log-sum-exp)
    assert sum(compiled.values()) == T * vocab * 2 + 2 * T * 4


def test_bnb_kept_inputs_count_once_per_tensor() -> None:
    # bitsandbytes < 0.43.2 keeps a reference to each 4-bit linear's input (ctx.tensors = (A, B)):
    # Llama-2-7B, bf16 adapters on q,v (r = 8): the layer saves what a full 16-bit layer saves,
    # 194,696 B per token (test_lora.test_frozen_projections_save_no_input), minus the frozen
    # norms' copies 2 × 2 B × 4096 = 16,384; q and v's adapters read the input q/k/v already hold,
    # so they add only lora_A's outputs 2 × 8 × 2 B = 32: 178,344 B per token per layer. Head:
    # final norm without its copy 4h + 4 = 16,388 (lm_head frozen)
    conv = Conventions(bnb_keeps_4bit_inputs=True, adapter_dtype="model")
    est = _est(conv, method="qlora", lora_targets="q,v", lora_rank=8, seq_len=4096)
    assert est.phase == "backward start (loss)"
    assert est.component("activations") == 32 * 4096 * 178_344 + 4096 * 16_388


def test_bnb_kept_input_of_a_parallel_block_is_one_tensor() -> None:
    # phi-2-like parallel block: attention and MLP read one normed tensor, which bitsandbytes
    # < 0.43.2 holds once: the kept MLP input (2 B × h) is not added to the attention's
    spec = ModelSpec(
        name="p", architecture="phi", vocab_size=1024, hidden_size=256, num_layers=2,
        num_attention_heads=4, num_kv_heads=4, intermediate_size=1024,
        max_position_embeddings=512, parallel_block=True, norms_per_layer=1,
        norm_kind="layernorm", mlp_kind="plain",
    )  # fmt: skip
    sequential = spec.model_copy(update={"parallel_block": False})
    conv = Conventions(bnb_keeps_4bit_inputs=True, adapter_dtype="model")

    def acts(s: ModelSpec) -> int:
        est = estimate_training(
            s, method="qlora", lora_targets="q,v", seq_len=256, conventions=conv
        )
        return est.component("activations")

    mlp_input = lora.frozen_inputs_not_saved_per_token(spec, "bf16")["mlp_replicated"]
    assert mlp_input == 2 * 256
    # 2 layers × 256 tokens × 512 B
    assert acts(sequential) - acts(spec) == 2 * 256 * mlp_input == 262_144


def test_full_state_dict_load_under_fsdp() -> None:
    # Lit-GPT 2023 FSDP: the full state dict loads into the wrapped model, gathering it on every
    # rank. Llama-2-7B LoRA q,v r = 8 (bf16-true: adapters 2 B) on 2 GPUs:
    # 6,738,415,616 params × 2 B + 4,194,304 adapter params × 2 B = 13,485,219,840 gathered
    # + ÷ 2 = 6,742,609,920 own shard → 20,227,829,760 B, + the CUDA context (500 MiB)
    conv = Conventions(full_state_dict_load=True, adapter_dtype="model")
    kw = {"method": "lora", "lora_targets": "q,v", "lora_rank": 8, "precision": "bf16"}
    est = _est(conv, num_gpus=2, fsdp="full", seq_len=512, **kw)
    assert est.load_components[0].bytes == 13_485_219_840 + 6_742_609_920
    assert est.load_peak_bytes == 20_227_829_760 + 500 * 2**20
    # the default (and torchtune, which distributes one full tensor at a time) reports no load phase
    assert _est(None, num_gpus=2, fsdp="full", seq_len=512, **kw).load_peak_bytes == 0
