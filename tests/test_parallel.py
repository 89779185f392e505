"""Sharding and parallelism: ZeRO / FSDP model states, TP/SP/PP/CP/EP activations, offload, errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paper_formulas import korthikanti_layer_bytes, zero_model_state_bytes
from typer.testing import CliRunner

import vramcalc
from vramcalc.cli.app import app, main
from vramcalc.core import activations as act
from vramcalc.core import parallel as par
from vramcalc.core.training import estimate_training
from vramcalc.spec.params import param_count, tensor_groups

PSI = 6_738_415_616  # Llama-2-7B parameters (tests/test_params.py)
MODEL_STATES = ("weights", "gradients", "master_weights", "optimizer_state")


def _states(**kw: object) -> int:
    # grad_accum 2: gradients are held through the step, so every model state is in the peak
    est = estimate_training("llama-2-7b", grad_accum=2, seq_len=512, **kw)  # type: ignore[arg-type]
    return sum(est.component(n) for n in MODEL_STATES)


# ---- ZeRO and FSDP model states (ZeRO paper §5.1; DeepSpeed estimator) -------------------------


def test_zero_paper_figure_1() -> None:
    # ZeRO paper Figure 1: Ψ = 7.5B, K = 12, N_d = 64 → 120 GB, 31.4 GB, 16.6 GB, 1.88 GB per GPU
    psi = 7_500_000_000
    figures = [zero_model_state_bytes(psi, stage, 64) / 1e9 for stage in (0, 1, 2, 3)]
    assert [round(f, 1) for f in figures[:3]] == [120.0, 31.4, 16.6]
    assert round(figures[3], 2) == 1.88


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_estimator_equals_paper_formula(stage: int) -> None:
    assert _states(zero=stage, num_gpus=8) == zero_model_state_bytes(PSI, stage, 8)


def test_zero_stages_follow_the_paper() -> None:
    # mixed-precision Adam: 2Ψ weights + 2Ψ grads + 12Ψ (fp32 master, m, v); N = 8; Ψ/8 = 842,301,952
    n = PSI // 8
    assert PSI % 8 == 0
    assert _states(zero=0, num_gpus=8) == 16 * PSI
    assert _states(zero=1, num_gpus=8) == 4 * PSI + 12 * n  # 4Ψ + 12Ψ/N
    assert _states(zero=2, num_gpus=8) == 2 * PSI + 14 * n  # 2Ψ + 14Ψ/N
    assert _states(zero=3, num_gpus=8) == 16 * n  # 16Ψ/N
    est = estimate_training("llama-2-7b", zero=3, num_gpus=8, grad_accum=2)
    assert est.component("optimizer_state") == 8 * n and est.component("master_weights") == 4 * n


def test_zero_step_casts_gradient_partition_to_fp32() -> None:
    # at optimizer.step() DeepSpeed builds a fp32 copy of this rank's gradient partition:
    # 4 B × Ψ/8 = 3,369,207,808 B for ZeRO-2 over 8 GPUs (short sequences: the step is the peak)
    est = estimate_training("llama-2-7b", zero=2, num_gpus=8, seq_len=128)
    assert est.phase == "optimizer step"
    assert est.component("optimizer_temporaries") == 4 * PSI // 8 == 3_369_207_808


def test_zero3_within_deepspeed_estimator() -> None:
    # DeepSpeed estimate_zero3_model_states_mem_needs (no offload): 4·largest_layer + 18Ψ/N; the
    # largest module of Llama-2-7B is embed_tokens / lm_head, 32,000 × 4096 = 131,072,000 params
    est = estimate_training("llama-2-7b", zero=3, num_gpus=8, grad_accum=2, seq_len=512)
    ours = sum(est.component(n) for n in MODEL_STATES)
    ours += est.component("gathered_parameters") + est.component("communication_buffers")
    deepspeed = 4 * 131_072_000 + 18 * PSI // 8
    assert 16 * PSI // 8 < ours <= deepspeed


def test_zero3_buffers_by_hand() -> None:
    # one decoder layer: q,k,v,o 4 × 4096² + MLP 3 × 4096 × 11008 + 2 norms × 4096 = 202,383,360;
    # gathered: (layer + 5e7-element prefetch bucket) × 2 B; the reduce bucket is allocated whole,
    # 5e8 elements × 2 B (stage3.py torch.empty(reduce_bucket_size); measured, docs/distributed.md)
    est = estimate_training("llama-2-7b", zero=3, num_gpus=8)
    layer = 4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096
    assert layer == 202_383_360
    assert est.component("gathered_parameters") == (layer + 50_000_000) * 2
    assert est.component("communication_buffers") == 500_000_000 * 2


@pytest.mark.parametrize(
    ("stage", "seq", "phase", "bucket"),
    [
        # ZeRO-1/2: the bucket exists from the first gradient hook to the end of backward
        # (stage_1_and_2.py setup_buckets / _release_ipg_buffers): counted at the first layer,
        (1, 128, "backward end (first layer)", 1_000_000_000),
        (2, 128, "backward end (first layer)", 1_000_000_000),
        # not at the loss (long sequences: the logits make the loss the peak),
        (1, 2048, "backward start (loss)", 0),
        (2, 2048, "backward start (loss)", 0),
        # ZeRO-3 allocates it in __init__ and keeps it (stage3.py), even at the step
        (3, 128, "optimizer step", 1_000_000_000),
        (3, 2048, "backward start (loss)", 1_000_000_000),
    ],
)
def test_zero_reduce_bucket_is_whole_for_small_models(
    stage: int, seq: int, phase: str, bucket: int
) -> None:
    # DeepSpeed allocates reduce_bucket_size elements even when the model is smaller: qwen2.5-0.5b
    # (494M params < 5e8) holds 5e8 × 2 B = 1,000,000,000 B (measured, docs/distributed.md)
    est = estimate_training("qwen2.5-0.5b", zero=stage, num_gpus=2, seq_len=seq)
    assert est.phase == phase
    assert est.component("communication_buffers") == bucket


def test_fsdp_full_shard() -> None:
    # sharded fp32 params 4Ψ/N + fp32 grads 4Ψ/N + AdamW 8Ψ/N; 2 gathered bf16 units
    n = PSI // 8
    assert _states(fsdp="full", num_gpus=8) == 16 * n
    est = estimate_training("llama-2-7b", fsdp="full", num_gpus=8)
    assert est.component("gathered_parameters") == 2 * 202_383_360 * 2
    # hybrid over 2 nodes × 8: shards within the node only
    assert _states(fsdp="hybrid", nodes=2, gpus_per_node=8) == 16 * n
    # no-shard keeps everything: 4 + 4 + 8 = 16 B per param
    assert _states(fsdp="no-shard", num_gpus=8) == 16 * PSI


def test_offload_matches_deepspeed_cpu_figures() -> None:
    # ZeRO-2 + optimizer offload: GPU keeps 16-bit weights (2Ψ, DeepSpeed's estimator) and the CPU of
    # the node holds fp32 grads + master + m + v = 16Ψ per node (estimator, before its 1.5 buffer)
    est = estimate_training("llama-2-7b", zero=2, num_gpus=8, offload="optimizer", grad_accum=2)
    assert sum(est.component(n) for n in MODEL_STATES) == 2 * PSI
    assert est.cpu_bytes_per_node == 16 * PSI
    # ZeRO-3 + parameter offload: nothing resident on GPU, 18Ψ per node on CPU (estimator's 18)
    est = estimate_training("llama-2-7b", zero=3, num_gpus=8, offload="params", grad_accum=2)
    assert sum(est.component(n) for n in MODEL_STATES) == 0
    assert est.cpu_bytes_per_node == 18 * PSI
    saved = {s.choice: s.saved_bytes for s in est.savings}
    assert saved["offload params"] > 0
    # ZeRO-1 + offload: the full 16-bit gradients stay on the GPU (2Ψ + 2Ψ), 16Ψ/N per GPU on CPU
    est = estimate_training("llama-2-7b", zero=1, num_gpus=8, offload="optimizer", grad_accum=2)
    assert sum(est.component(n) for n in MODEL_STATES) == 4 * PSI
    assert est.cpu_bytes_per_node == 16 * PSI


# ---- tensor / pipeline / context / expert parallel ---------------------------------------------


def test_megatron_tp_weights_by_hand() -> None:
    # TP=2 splits linears, embedding and lm_head; norms stay whole:
    # linears 32 × (4·4096² + 3·4096·11008) = 6,476,005,376; embed + lm_head 2 × 131,072,000;
    # norms 32 × 8192 + 4096 = 266,240 → (6,476,005,376 + 262,144,000)/2 + 266,240 = 3,369,340,928
    est = estimate_training("llama-2-7b", tp=2, num_gpus=2, grad_accum=2, seq_len=512)
    per_gpu = 3_369_340_928
    assert est.component("weights") == 2 * per_gpu  # bf16 params
    assert est.component("gradients") == 4 * per_gpu  # fp32 main grads
    assert est.component("master_weights") == 4 * per_gpu
    assert est.component("optimizer_state") == 8 * per_gpu  # Megatron docs: 18 B per param


@pytest.mark.parametrize(("precision", "per_param"), [("bf16-mixed", 18), ("fp16-mixed", 20)])
def test_megatron_bytes_per_param(precision: str, per_param: int) -> None:
    # Megatron-LM distributed-optimizer docs: bf16 params + fp32 grads 18 B, fp16 params + grads 20 B
    est = estimate_training("llama-2-7b", precision=precision, pp=2, num_gpus=2, grad_accum=2)
    spec = vramcalc.get_model("llama-2-7b")
    stage_params = sum(
        g.numel for g in par.stage_groups(tensor_groups(spec), spec, _plan(pp=2, num_gpus=2), 0)
    )
    # stage 0: 16 layers + embedding = 16 × 202,383,360 + 131,072,000 = 3,369,205,760
    assert stage_params == 3_369_205_760
    assert est.parallel["most_loaded_stage"] == 0
    assert sum(est.component(n) for n in MODEL_STATES) == per_param * stage_params


def _plan(**kw: object) -> par.ParallelPlan:
    return par.make_plan(vramcalc.get_model("llama-2-7b"), 4096, **kw)  # type: ignore[arg-type]


def test_korthikanti_table2_by_hand() -> None:
    # GPT-3 175B: s=2048, b=1, h=12288, a=96, t=8; 5as/h = 5·96·2048/12288 = 80
    s, b, h, a = 2048, 1, 12288, 96
    sbh = s * b * h
    assert korthikanti_layer_bytes(s, b, h, a) == sbh * (34 + 80)
    assert korthikanti_layer_bytes(s, b, h, a, t=8) == sbh * (10 + 3 + 10)
    assert korthikanti_layer_bytes(s, b, h, a, t=8, sp=True) == sbh * 114 / 8
    assert korthikanti_layer_bytes(s, b, h, a, t=8, sp=True, recompute="selective") == sbh * 34 / 8
    assert korthikanti_layer_bytes(s, b, h, a, t=8, recompute="full") == 2 * sbh


def test_replicated_part_is_korthikanti_ten_sbh_for_gpt2() -> None:
    # GPT-2 in 16-bit: two LayerNorm inputs 2·2h, QKV input 2h, MLP input 2h, two dropout masks 2·h
    # = 10h per token: the paper's 10·sbh that tensor parallelism leaves whole
    spec = vramcalc.get_model("gpt2")
    assert par.layer_replicated_bytes_per_token(spec, "bf16") == 10 * spec.hidden_size


def _acts(**kw: object) -> int:
    est = estimate_training("llama-2-7b", seq_len=2048, batch_size=8, **kw)  # type: ignore[arg-type]
    assert est.phase.endswith("backward start (loss)")
    return est.component("activations")


def test_megatron_gpt3_matches_korthikanti_exactly() -> None:
    # GPT-3 175B (GPT layer: LayerNorm, dropout, 4h GeLU MLP), eager attention, s = 2048, b = 1,
    # t = 8: per layer sbh(10 + 24/8 + 5as/(8h)); with sequence parallelism sbh/8·(34 + 5as/h);
    # with full recompute 2sbh/8 (+ the head: final LayerNorm and lm_head inputs, 2h + 2h per token)
    spec = vramcalc.get_model("gpt3-175b")
    s, h, a = 2048, 12288, 96
    head = s * act.head_saved_bytes_per_token(spec, "bf16")
    assert head == s * (2 * h + 2 * h + h)  # + GPT-2's embedding dropout mask
    kw = dict(tp=8, num_gpus=8, seq_len=s, attention="eager", grad_accum=2)
    est = estimate_training("gpt3-175b", **kw)  # type: ignore[arg-type]
    assert est.phase == "backward start (loss)"
    paper = korthikanti_layer_bytes(s, 1, h, a, t=8)
    assert est.component("activations") == int(96 * paper + head)
    est = estimate_training("gpt3-175b", sp=True, **kw)  # type: ignore[arg-type]
    paper = korthikanti_layer_bytes(s, 1, h, a, t=8, sp=True)
    assert est.component("activations") == int(96 * paper + head / 8)
    # flash attention keeps no s×s scores: the paper's selective recompute
    flash = dict(kw, attention="flash", sp=True)
    est = estimate_training("gpt3-175b", **flash)  # type: ignore[arg-type]
    paper = korthikanti_layer_bytes(s, 1, h, a, t=8, sp=True, recompute="selective")
    assert est.component("activations") == int(96 * paper + head / 8)


def test_megatron_llama_tp_and_sp_by_hand() -> None:
    # Llama-2-7B Megatron-Core layer, 16-bit, per token: replicated = 2 RMSNorm inputs 2h·2 +
    # QKV input 2h + MLP input 2h = 8h = 32,768; split = Q,K,V 2·3·4096 + attention output 2·4096
    # + gate/up output 2·2·11008 + SwiGLU output 2·11008 = 98,816
    spec = vramcalc.get_model("llama-2-7b")
    assert par.megatron_layer_parts(spec, 2048, "flash", moe=False) == (32_768, 98_816)
    tokens = 8 * 2048
    head = tokens * act.head_saved_bytes_per_token(spec, "bf16")
    assert _acts(tp=4, num_gpus=4) == int(32 * tokens * (32_768 + 98_816 / 4) + head)
    assert _acts(tp=4, sp=True, num_gpus=4) == int(32 * tokens * (32_768 + 98_816) / 4 + head / 4)


def test_hf_layers_without_tensor_parallel() -> None:
    # DeepSpeed data parallel runs the transformers layers: activations.py's count
    spec = vramcalc.get_model("llama-2-7b")
    tokens = 8 * 2048
    total = act.layer_bytes_per_token(spec, "bf16", 2048, "flash", moe=False)
    head = tokens * act.head_saved_bytes_per_token(spec, "bf16")
    assert _acts(zero=0, num_gpus=4) == int(32 * tokens * total + head)


def test_pipeline_first_stage_holds_pp_micro_batches() -> None:
    # 1F1B: stage 0 keeps pp = 4 micro-batches of its 8 layers = 32 layers' worth and no head
    # (Korthikanti §4.2.3); Megatron-Core layer of Llama-2-7B: 32,768 + 98,816 B per token
    kw = dict(pp=4, num_gpus=4, seq_len=2048, batch_size=8)
    est = estimate_training("llama-2-7b", grad_accum=8, **kw)  # type: ignore[arg-type]
    assert est.parallel["most_loaded_stage"] == 0
    tokens = 8 * 2048
    assert est.component("activations") == 4 * 8 * tokens * (32_768 + 98_816)
    assert len(est.stage_totals_bytes) == 4 and est.total_bytes == max(est.stage_totals_bytes)
    # fewer micro-batches than stages: only that many are in flight
    two = estimate_training("llama-2-7b", grad_accum=2, **kw)  # type: ignore[arg-type]
    assert two.component("activations") == 2 * 8 * tokens * (32_768 + 98_816)


def test_megatron_distributed_optimizer() -> None:
    # --zero 1 with tp: Megatron's distributed optimizer, bf16 params + fp32 grads: 6 + 12/d B
    # per parameter (Megatron-LM docs); tp = 2 → 3,369,340,928 params per GPU, d = 4
    est = estimate_training("llama-2-7b", tp=2, zero=1, num_gpus=8, grad_accum=2, seq_len=512)
    assert est.parallel["framework"] == "megatron"
    assert (
        sum(est.component(n) for n in MODEL_STATES) == 6 * 3_369_340_928 + 12 * 3_369_340_928 // 4
    )


def test_context_parallel_halves_tokens() -> None:
    one = _acts(tp=2, num_gpus=2)
    assert abs(_acts(tp=2, num_gpus=4, cp=2) - one / 2) <= 1


def test_expert_parallel_splits_experts() -> None:
    spec = vramcalc.get_model("mixtral-8x7b")
    experts = 3 * 4096 * 14336 * 8 * 32  # gate, up, down × 8 experts × 32 layers
    dense = param_count(spec) - experts
    est = estimate_training("mixtral-8x7b", ep=8, num_gpus=8, tp=1, seq_len=512)
    assert est.component("weights") == 2 * (dense + experts // 8)


def test_cluster_columns_add_up() -> None:
    est = estimate_training("llama-3.1-70b", tp=8, pp=4, sp=True, num_gpus=64, grad_accum=8)
    assert est.num_gpus == 64
    assert est.cluster_total_bytes == sum(c.cluster_bytes or 0 for c in est.components)
    assert est.cluster_total_bytes == sum(est.stage_totals_bytes) * 16
    choices = {s.choice for s in est.savings}
    assert {"tp=8", "sequence parallel", "pp=4"} <= choices


@settings(max_examples=30, deadline=None)
@given(
    tp=st.sampled_from([1, 2, 4]),
    pp=st.sampled_from([1, 2, 11]),
    dp=st.sampled_from([1, 2, 3]),
    sharding=st.sampled_from(
        [
            {},
            {"zero": 0},
            {"zero": 1},
            {"zero": 2},
            {"zero": 3},
            {"fsdp": "full"},
            {"fsdp": "grad-op"},
        ]
    ),
    ckpt=st.sampled_from(["none", "full"]),
    accum=st.sampled_from([1, 3, 16]),
)
def test_components_sum_on_every_plan(
    tp: int, pp: int, dp: int, sharding: dict[str, object], ckpt: str, accum: int
) -> None:
    kw = dict(sharding)
    if pp > 1 and kw.get("zero") in (2, 3):
        kw = {"zero": 1}
    est = estimate_training(
        "tinyllama-1.1b",
        tp=tp,
        pp=pp,
        num_gpus=tp * pp * dp,
        grad_checkpointing=ckpt,
        grad_accum=accum,
        seq_len=512,
        **kw,  # type: ignore[arg-type]
    )
    assert est.total_bytes == sum(c.bytes for c in est.components)
    if tp * pp * dp == 1 and not kw:  # one plain GPU: training.py's own path
        assert est.num_gpus == 1 and est.cluster_total_bytes is None
        return
    assert est.total_bytes == max(est.stage_totals_bytes)
    assert est.cluster_total_bytes == sum(c.cluster_bytes or 0 for c in est.components)
    assert est.cluster_total_bytes >= est.total_bytes


@settings(max_examples=15, deadline=None)
@given(n=st.sampled_from([2, 4, 8, 16, 64]))
def test_zero_stages_never_hold_more(n: int) -> None:
    states = [_states(zero=z, num_gpus=n) for z in (0, 1, 2, 3)]
    assert states == sorted(states, reverse=True)


# ---- CLI ---------------------------------------------------------------------------------------


def test_cli_json_multi_gpu() -> None:
    result = CliRunner().invoke(
        app,
        ["train", "llama-2-7b", "--zero", "3", "--nodes", "2", "--gpus-per-node", "8", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["num_gpus"] == 16 and data["parallel"]["shard_degree"] == 16
    assert data["total_bytes"] == sum(c["bytes"] for c in data["components"])
    assert data["cluster_total_bytes"] == 16 * data["total_bytes"]
    saving = data["savings"][0]
    assert saving["choice"] == "ZeRO-3" and saving["compared_to"] == "ZeRO-0 (replicated states)"
    zero0 = estimate_training("llama-2-7b", zero=0, nodes=2, gpus_per_node=8)
    assert saving["saved_bytes"] == zero0.total_bytes - data["total_bytes"]


def test_cli_explain_prints_formulas() -> None:
    result = CliRunner().invoke(
        app, ["train", "llama-2-7b", "--zero", "2", "--num-gpus", "4", "--explain"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "how each term is computed" in out
    # master weights: Ψ × 4 B ÷ 4 = 6,738,415,616 bytes
    assert "6,738,415,616 params × 4 B ÷ 4 = 6,738,415,616" in out
    assert "ZeRO-2 saves" in out


def test_cli_plain_train_unchanged() -> None:
    result = CliRunner().invoke(app, ["train", "gpt2", "--json"])
    data = json.loads(result.output)
    assert data["num_gpus"] == 1 and data["savings"] == [] and data["parallel"] == {}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--tp", "3", "--num-gpus", "3"], "--tp 3 must divide llama-2-7b's 32 attention heads"),
        (["--pp", "5", "--num-gpus", "5"], "--pp 5 does not divide llama-2-7b's 32 layers"),
        (["--tp", "4", "--num-gpus", "6"], "= 4 does not divide 6 GPUs"),
        (["--ep", "2", "--num-gpus", "2"], "needs a mixture-of-experts model"),
        (["--zero", "3", "--fsdp", "full", "--num-gpus", "2"], "not both"),
        (["--zero", "2", "--pp", "2", "--num-gpus", "2"], "supports ZeRO stage 0 or 1"),
        (["--offload", "optimizer", "--num-gpus", "2"], "needs --zero 1, 2 or 3"),
        (["--offload", "params", "--zero", "2", "--num-gpus", "2"], "needs --zero 3"),
        (["--offload", "optimizer", "--fsdp", "full"], "use --offload params"),
        (["--sequence-parallel"], "needs --tp greater than 1"),
        (["--num-gpus", "8", "--nodes", "3"], "does not divide over --nodes 3"),
        (["--fsdp", "hybrid", "--num-gpus", "8"], "give --nodes > 1"),
        (["--cp", "3", "--num-gpus", "3", "--seq-len", "1000"], "--cp 3 does not divide"),
        (["--zero", "5"], "--zero"),
    ],
)
def test_bad_parallel_input_is_one_line_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "llama-2-7b", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_ep_must_divide_experts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "mixtral-8x7b", "--ep", "3", "--num-gpus", "3"])
    assert exc.value.code == 2
    assert "does not divide mixtral-8x7b's 8 experts" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kw",
    [
        {"explain": True},
        {"method": "qlora", "grad_checkpointing": "full"},
        {"zero": 3, "num_gpus": 8, "offload": "optimizer"},
        {"fsdp": "full", "num_gpus": 8, "grad_accum": 4},
        {"tp": 4, "pp": 2, "sp": True, "num_gpus": 16, "grad_accum": 4},
    ],
)
def test_every_nonzero_component_has_a_formula(kw: dict[str, object]) -> None:
    est = estimate_training("llama-2-7b", seq_len=1024, **kw)  # type: ignore[arg-type]
    missing = [c.name for c in est.components if c.bytes and not c.formula]
    assert missing == []


def test_ddp_adds_gradient_buckets() -> None:
    # plain data parallel (torch layout): every state replicated as on one GPU, plus DDP's
    # gradient buckets, one more gradient-sized buffer (gradient_as_bucket_view=False): 4Ψ in fp32
    one = estimate_training("llama-2-7b", grad_accum=2, seq_len=512)
    ddp = estimate_training("llama-2-7b", grad_accum=2, seq_len=512, num_gpus=8)
    assert ddp.component("communication_buffers") == 4 * PSI
    for name in ("weights", "gradients", "optimizer_state", "activations", "logits_buffer"):
        assert ddp.component(name) == one.component(name)


def test_lora_under_zero3_shards_the_frozen_base() -> None:
    # ZeRO-3 partitions every parameter, frozen ones included: 2Ψ bf16 base / 8 GPUs
    est = estimate_training("llama-2-7b", method="lora", zero=3, num_gpus=8, seq_len=512)
    assert est.component("weights") == 2 * PSI // 8
    single = estimate_training("llama-2-7b", method="lora", seq_len=512)
    assert single.component("weights") == 2 * PSI


def test_cli_help_lists_options() -> None:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in (
        "--method",
        "--lora-rank",
        "--zero",
        "--fsdp",
        "--offload",
        "--tp",
        "--pp",
        "--sequence-parallel",
        "--ep",
        "--cp",
        "--nodes",
        "--explain",
    ):
        assert option in result.output


@settings(max_examples=30, deadline=None)
@given(
    stage=st.sampled_from([1, 2, 3]),
    seq=st.sampled_from([128, 512, 2048, 4096]),
    batch=st.integers(1, 8),
    ckpt=st.sampled_from(["none", "full"]),
)
def test_zero_bucket_alive_only_where_deepspeed_holds_it(
    stage: int, seq: int, batch: int, ckpt: str
) -> None:
    # ZeRO-3 holds its reduce bucket throughout; ZeRO-1/2 only between the first gradient and the
    # end of backward (stage_1_and_2.py setup_buckets / _release_ipg_buffers): never at the loss,
    # never at the optimizer step
    est = estimate_training(
        "qwen2.5-0.5b",
        zero=stage,
        num_gpus=4,
        seq_len=seq,
        batch_size=batch,
        grad_checkpointing=ckpt,
    )
    bucket = est.component("communication_buffers")
    if stage == 3:
        assert bucket == 1_000_000_000
    elif est.phase in ("backward start (loss)", "optimizer step"):
        assert bucket == 0
    else:
        assert bucket == 1_000_000_000
