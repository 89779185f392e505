"""RLHF stages: hand-derived memory per phase, reward-model parameter counts, FLOPs, CLI."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import vramcalc
from vramcalc.cli.app import app, main
from vramcalc.core.rlhf import estimate_rlhf, reward_model_spec
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError
from vramcalc.sources.calibration import runtime
from vramcalc.spec.hfconfig import hf_config_dict
from vramcalc.spec.params import param_count

N6 = 6_658_404_352  # GPT-3 6.7B (InstructGPT 6B) parameters, test_params / REFERENCES
H6 = 4096
N6_RM = N6 + H6  # tied embeddings: no lm_head to drop; + scalar head h×1
# FLOPs (PaLM Appendix B, vramcalc.core.flops) count the matmul parameters: the 2048 × 4096
# learned positions are a lookup, and so is the RM's token embedding once the scalar head unties it
MM6 = N6 - 2048 * H6  # 6,650,015,744
MM6_RM = N6_RM - 2048 * H6 - 50257 * H6  # 6,444,167,168
CTX = runtime().cuda_context_bytes
SLACK = runtime().allocator_slack_fraction
GIB = 1024**3


def _slack(dynamic_bytes: int) -> int:
    return int(SLACK * dynamic_bytes)


# ---- reward model parameters ---------------------------------------------------------------------


def test_reward_model_counts_by_hand() -> None:
    # GPT-3 6.7B ties its embedding: the RM keeps it as the input embedding and adds score (4096×1)
    assert param_count(reward_model_spec(vramcalc.get_model("instructgpt-6b-rm"))) == N6_RM
    # Llama-2-7B has its own lm_head (32000×4096 = 131,072,000), replaced by score (4096×1)
    assert (
        param_count(reward_model_spec(vramcalc.get_model("llama-2-7b")))
        == 6_738_415_616 - 131_072_000 + 4096
        == 6_607_347_712
    )
    # InstructGPT's 1.3B and 175B shapes (alias presets) with a scalar head: + d_model
    assert param_count(reward_model_spec(vramcalc.get_model("instructgpt-1.3b"))) == (
        1_315_723_264 + 2048
    )
    assert param_count(reward_model_spec(vramcalc.get_model("instructgpt-175b"))) == (
        174_604_259_328 + 12288
    )


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("gpt3-1.3b", "GPT2ForSequenceClassification"),  # InstructGPT 1.3B shape
        ("gpt2", "GPT2ForSequenceClassification"),
        ("llama-2-7b", "LlamaForSequenceClassification"),
        ("qwen2.5-0.5b", "Qwen2ForSequenceClassification"),
    ],
)
def test_reward_model_count_matches_transformers(name: str, cls: str) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    spec = vramcalc.get_model(name)
    cfg = hf_config_dict(spec)
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg, num_labels=1)
    with torch.device("meta"):
        model = getattr(transformers, cls)(config)
    assert tuple(model.score.weight.shape) == (1, spec.hidden_size)
    assert model.score.bias is None
    assert param_count(reward_model_spec(spec)) == sum(p.numel() for p in model.parameters())


# ---- PPO: four 6B-class models, bf16-mixed AdamW ---------------------------------------------------


def _ppo(**kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = dict(
        stage="ppo", reward_model="instructgpt-6b-rm", prompt_len=256, response_len=256
    )
    args.update(kw)
    return estimate_rlhf("instructgpt-6b", **args)  # type: ignore[arg-type]


def test_ppo_four_6b_models_training_phase_by_hand() -> None:
    est = _ppo(rollout_batch=8, batch_size=1)
    # batch 1 × 512 tokens: each model's training peak is optimizer.step() (see test_training):
    # fp32 weights 4 + fp32 grads 4 + AdamW m, v 8 + foreach sqrt buffer 4 = 20 B per parameter.
    # While the critic steps, the actor keeps weights + Adam state (12 B/param), reference and
    # reward sit in bf16 (2 B/param), and the experience buffer holds 8 sequences ×
    # (8 B × 512 token ids + 6 fp32 × 256 response tokens) = 81,920 B.
    buffer = 8 * (8 * 512 + 6 * 4 * 256)
    critic_step = 20 * N6_RM
    expected = 12 * N6 + critic_step + 2 * N6 + 2 * N6_RM + buffer
    # runtime: CUDA context + estimate_training's slack for the critic (5 % of its fp32 gradients)
    expected += CTX + _slack(4 * N6_RM)
    train_critic = est.phase("train critic")
    assert train_critic.total_bytes == expected
    assert train_critic.role_bytes("actor") == 12 * N6
    assert train_critic.role_bytes("critic") == critic_step
    assert train_critic.role_bytes("reference") == 2 * N6
    assert train_critic.role_bytes("reward") == 2 * N6_RM
    assert train_critic.role_bytes("experience") == buffer == 81_920
    # the critic is 4,096 parameters larger than the actor: its step is the peak;
    # ≈ 36 B × 6.66e9 = 223.3 GiB + 0.49 GiB context + 1.24 GiB slack ≈ 225.0 GiB
    assert est.peak_phase == "train critic"
    assert est.total_bytes == expected
    assert round(est.total_bytes / GIB, 1) == 225.0


def test_ppo_rollout_kv_cache_by_hand() -> None:
    est = _ppo(rollout_batch=8)
    rollout = est.phase("rollout")
    # 2 (K, V) × 32 layers × 8 sequences × 512 tokens × 4096 × 2 bytes = 2 GiB
    kv = [c for c in rollout.components if c.name == "kv_cache"]
    assert [(c.role, c.bytes) for c in kv] == [("actor", 2 * 32 * 8 * 512 * 4096 * 2)]
    assert kv[0].bytes == 2 * GIB
    # the critic is idle but resident: fp32 weights + AdamW state = 12 B/param
    assert rollout.role_bytes("critic") == 12 * N6_RM
    # doubling the rollout batch doubles the KV cache
    big = _ppo(rollout_batch=16).phase("rollout")
    assert sum(c.bytes for c in big.components if c.name == "kv_cache") == 4 * GIB


def test_ppo_frozen_dtype_and_offload() -> None:
    base = _ppo()
    # llm.int8 reference/reward: int8 linear weights (32 × (4·4096² + 2·4096·16384) = 6,442,450,944)
    # + fp32 scale per output row (32 × 36,864 rows × 4 B = 4,718,592) + the rest in bf16
    linear = 32 * (4 * 4096**2 + 2 * 4096 * 16384)
    assert linear == 6_442_450_944
    int8_ref = linear + 32 * 36_864 * 4 + 2 * (N6 - linear)
    assert int8_ref == 6_879_076_352
    int8 = _ppo(frozen_dtype="int8")
    assert int8.phase("train actor").role_bytes("reference") == int8_ref
    assert int8.phase("train actor").role_bytes("reward") == int8_ref + 2 * H6
    # offloaded frozen models leave the GPU outside their own forward
    off = _ppo(offload_frozen=True)
    diff = base.phase("train actor").total_bytes - off.phase("train actor").total_bytes
    assert diff == 2 * N6 + 2 * N6_RM
    assert off.phase("score ref").role_bytes("reference") == base.phase("score ref").role_bytes(
        "reference"
    )
    assert off.phase("score ref").role_bytes("reward") == 0
    assert off.total_bytes < base.total_bytes


def test_ppo_separate_placement_groups() -> None:
    est = _ppo(placement="separate")
    assert [g.name for g in est.groups] == ["actor", "critic", "reference", "reward"]
    assert est.num_gpus == 4
    by_name = {g.name: g for g in est.groups}
    # the reference GPU holds only the bf16 reference: 2 B/param + its forward + runtime
    ref = by_name["reference"]
    assert ref.peak_phase == "score ref"
    ref_fwd = est.phase("score ref").group_bytes("reference") - 2 * N6
    assert 0 < ref_fwd < 2 * GIB
    # the actor GPU: its optimizer step (20 B/param) + the experience buffer + runtime
    actor = by_name["actor"]
    assert actor.peak_phase == "train actor"
    assert actor.peak_bytes == 20 * N6 + 81_920 + CTX + _slack(4 * N6)
    assert est.total_bytes == max(g.peak_bytes for g in est.groups) == by_name["critic"].peak_bytes


def test_ppo_flops_by_hand_and_time() -> None:
    est = _ppo(rollout_batch=8, peak_tflops=1000, mfu=0.5, usd_per_gpu_hour=2.0)
    tokens = 8 * 512
    attn = 32 * H6 * 512  # Σ over 32 layers of H·Q × T (T = 256 prompt + 256 response)
    fwd, fwd_rm = 2 * MM6 + 4 * attn, 2 * MM6_RM + 4 * attn  # one forward per token
    train, train_rm = 6 * MM6 + 12 * attn, 6 * MM6_RM + 12 * attn  # one trained token
    # generate, score actor, score ref (policy shape); score critic, score reward (RM shape);
    # train actor, train critic
    expected = (3 * fwd + 2 * fwd_rm + train + train_rm) * tokens
    assert expected == 147_194_650_624 * tokens  # 40,705,400,832 × 2 + 26,313,539,584 + 39,470,309,376
    assert est.total_flops == expected
    assert est.time_s == pytest.approx(expected / (1000e12 * 0.5), rel=1e-12)
    assert est.cost_usd == pytest.approx(est.time_s / 3600 * 2.0, rel=1e-12)
    twice = _ppo(rollout_batch=8, ppo_epochs=2, iterations=3)
    trains = (train + train_rm) * tokens
    assert twice.total_flops == 3 * (expected + trains)


def test_ppo_time_and_price_from_the_gpu_catalog() -> None:
    """--gpu alone prices the run as `vramcalc cost train` would: the catalog's dense peak for the
    precision's math, its generation's default MFU and its on-demand price; given values win."""
    from vramcalc.core.gpu_rates import compute_peak, default_mfu
    from vramcalc.sources.presets import get_gpu

    a100 = get_gpu("a100-80gb")
    peak_tflops, _ = compute_peak(a100, "bf16")
    mfu, _ = default_mfu(a100)
    assert (peak_tflops, mfu) == (312.0, 0.40)  # NVIDIA A100 datasheet; PaLM/Megatron range
    est = _ppo(rollout_batch=8, gpu="a100-80gb", num_gpus=8, zero=3)
    assert est.time_s == pytest.approx(est.total_flops / (8 * 312e12 * 0.40), rel=1e-12)
    assert a100.usd_per_gpu_hour is not None
    assert est.cost_usd == pytest.approx(est.time_s / 3600 * 8 * a100.usd_per_gpu_hour)
    mine = _ppo(rollout_batch=8, gpu="a100-80gb", num_gpus=8, zero=3, mfu=0.5, usd_per_gpu_hour=1)
    assert mine.time_s == pytest.approx(est.time_s * 0.40 / 0.5, rel=1e-12)
    assert mine.cost_usd == pytest.approx(mine.time_s / 3600 * 8)
    # fp16-mixed on a V100 (no bf16 tensor cores): the fp16 peak, Volta's 21 % (GPT-3's run)
    v100 = _ppo(rollout_batch=8, gpu="v100-32gb", precision="fp16-mixed", num_gpus=8, zero=3)
    assert v100.time_s == pytest.approx(v100.total_flops / (8 * 125e12 * 0.21), rel=1e-12)
    # no GPU: FLOPs only
    assert _ppo(rollout_batch=8).time_s is None


# ---- SFT, RM, DPO, GRPO --------------------------------------------------------------------------


def test_sft_is_the_training_estimate() -> None:
    est = estimate_rlhf("instructgpt-1.3b", stage="sft", batch_size=4, seq_len=1024)
    train = estimate_training("instructgpt-1.3b", batch_size=4, seq_len=1024)
    assert est.total_bytes == train.total_bytes
    # 6 × 1,311,528,960 matmul params (1,315,723,264 − 2048 × 2048 learned positions)
    # + 12 × 24 layers × 2048 × 1024 tokens of attention, per token, × 4 × 1024 tokens
    assert est.total_flops == (6 * 1_311_528_960 + 12 * 24 * 2048 * 1024) * 4 * 1024


def test_rm_activations_scale_with_k_and_no_vocab_logits() -> None:
    def acts(k: int) -> int:
        est = estimate_rlhf("instructgpt-6b", stage="rm", batch_size=2, seq_len=2048, comparisons=k)
        return est.phase("train").role_bytes("reward") - 4 * N6_RM - 8 * N6_RM

    # 2 prompts × K responses are one batch: K=8 holds twice the sequences of K=4
    k4 = estimate_rlhf("instructgpt-6b", stage="rm", batch_size=2, seq_len=2048, comparisons=4)
    k8 = estimate_rlhf("instructgpt-6b", stage="rm", batch_size=2, seq_len=2048, comparisons=8)
    a4 = sum(c.bytes for c in k4.phase("train").components if c.name == "activations")
    a8 = sum(c.bytes for c in k8.phase("train").components if c.name == "activations")
    assert a8 == 2 * a4
    assert acts(8) > acts(4)
    # scalar head: the loss sees 8 × 2048 tokens × 1 output, not × 50,257 vocabulary logits
    logits = sum(c.bytes for c in k4.phase("train").components if c.name == "logits_buffer")
    assert logits == 12 * 1 * 8 * 2048
    assert k4.total_flops == (6 * MM6_RM + 12 * 32 * H6 * 2048) * 2 * 4 * 2048


def test_dpo_pairs_and_precomputed_reference() -> None:
    est = estimate_rlhf("instructgpt-1.3b", stage="dpo", batch_size=2, seq_len=512)
    sft = estimate_rlhf("instructgpt-1.3b", stage="sft", batch_size=4, seq_len=512)
    n = 1_315_723_264
    mm, attn = n - 2048 * 2048, 24 * 2048 * 512  # matmul params; 24 layers × H·Q × T
    # chosen + rejected = 2 × 2 sequences; + the bf16 reference (2 B/param) + 4 fp32 log-probs
    assert est.phase("train policy").total_bytes == sft.total_bytes + 2 * n + 4 * 4
    pre = estimate_rlhf(
        "instructgpt-1.3b", stage="dpo", batch_size=2, seq_len=512, reference="precomputed"
    )
    assert [p.name for p in pre.phases] == ["train policy"]
    assert pre.total_bytes == sft.total_bytes + 4 * 4
    # FLOPs: policy trains (6·N + 12·attn), the reference runs a forward (2·N + 4·attn), 4 × 512 tokens
    assert est.total_flops == (8 * mm + 16 * attn) * 4 * 512
    assert pre.total_flops == (6 * mm + 12 * attn) * 4 * 512


def test_grpo_group_samples_and_no_critic() -> None:
    est = estimate_rlhf(
        "llama-2-7b", stage="grpo", rollout_batch=4, group_size=8, prompt_len=512, response_len=512
    )
    assert {r.role for r in est.roles} == {"policy", "reference"}
    kv = sum(c.bytes for c in est.phase("rollout").components if c.name == "kv_cache")
    # 2 × 32 layers × (4 prompts × G=8) × 1024 tokens × 4096 × 2 B = 16 GiB
    assert kv == 2 * 32 * 32 * 1024 * 4096 * 2 == 16 * GIB
    # old log-probs are only scored when a batch is trained more than once (TRL num_iterations)
    assert "score policy" not in [p.name for p in est.phases]
    again = estimate_rlhf("llama-2-7b", stage="grpo", ppo_epochs=2)
    assert "score policy" in [p.name for p in again.phases]
    with_rm = estimate_rlhf("llama-2-7b", stage="grpo", reward_model="llama-2-7b")
    assert "score reward" in [p.name for p in with_rm.phases]


# ---- invariants ----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    stage=st.sampled_from(["sft", "rm", "ppo", "dpo", "grpo"]),
    batch=st.integers(1, 8),
    prompt=st.integers(1, 1024),
    response=st.integers(1, 1024),
    rollout=st.integers(1, 64),
    placement=st.sampled_from(["colocated", "separate"]),
    offload=st.booleans(),
    options=st.sampled_from([{}, {"num_gpus": 4, "zero": 3}, {"method": "lora"}]),
)
def test_phases_add_up_and_peak_is_the_max(
    stage: str,
    batch: int,
    prompt: int,
    response: int,
    rollout: int,
    placement: str,
    offload: bool,
    options: dict[str, object],
) -> None:
    kw = dict(
        stage=stage,
        batch_size=batch,
        seq_len=prompt + response,
        prompt_len=prompt,
        response_len=response,
        rollout_batch=rollout,
        placement=placement,
        **options,
    )
    est = estimate_rlhf("instructgpt-1.3b", offload_frozen=offload, **kw)  # type: ignore[arg-type]
    for p in est.phases:
        assert p.total_bytes == sum(c.bytes for c in p.components)
        assert p.total_bytes == sum(p.group_bytes(g.name) for g in est.groups)
    for g in est.groups:
        assert g.peak_bytes == max(g.phase_bytes.values())
    assert est.total_bytes == max(g.peak_bytes for g in est.groups)
    kept = estimate_rlhf("instructgpt-1.3b", offload_frozen=False, **kw)  # type: ignore[arg-type]
    assert est.total_bytes <= kept.total_bytes
    assert est.total_flops > 0


# ---- CLI ------------------------------------------------------------------------------------------


def test_cli_json_ppo() -> None:
    result = CliRunner().invoke(
        app,
        ["rlhf", "instructgpt-6b", "--stage", "ppo", "--reward-model", "instructgpt-6b-rm"]
        + ["--gpu", "h100", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "rlhf"
    assert data["peak_phase"] == "train critic"
    assert [r["role"] for r in data["roles"]] == ["actor", "critic", "reference", "reward"]
    assert data["gpu"]["fits"] is False
    assert data["total_bytes"] == _ppo().total_bytes


def test_cli_table_names_every_phase() -> None:
    result = CliRunner().invoke(
        app, ["rlhf", "instructgpt-1.3b", "--stage", "grpo", "--peak-tflops", "989"]
    )
    assert result.exit_code == 0, result.output
    for word in ("rollout", "score ref", "train policy", "total per GPU", "time:"):
        assert word in result.stdout


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["rlhf", "gpt2", "--stage", "bogus"], "bogus"),
        (["rlhf", "gpt2", "--stage", "ppo", "--frozen-dtype", "int3"], "int3"),
        (["rlhf", "gpt3-6.7b", "--stage", "ppo", "--prompt-len", "2000"], "2048"),
        (["rlhf", "gpt2", "--stage", "ppo", "--reward-model", "nope-7b"], "nope-7b"),
        (["rlhf", "gpt2", "--stage", "ppo", "--share-base"], "LoRA"),
    ],
)
def test_cli_errors_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


def test_library_rejects_bad_values() -> None:
    with pytest.raises(VramcalcError, match="comparisons"):
        estimate_rlhf("gpt2", stage="rm", comparisons=1)
    with pytest.raises(VramcalcError, match="stage"):
        estimate_rlhf("gpt2", stage="rlhf")


# ---- sharding and LoRA (forwarded to estimate_training / vramcalc.core.parallel) ----------------------


def test_ppo_zero3_shards_every_model() -> None:
    est = _ppo(num_gpus=8, zero=3)
    assert est.num_gpus == 8
    rollout = est.phase("rollout")
    # ZeRO-3 over 8 ranks: actor fp16 weights 2 + fp32 master 4 + Adam 8 bytes per parameter ÷ 8
    actor = {c.name: c.bytes for c in rollout.components if c.role == "actor"}
    assert actor["weights"] == 2 * N6 // 8 == 1_664_601_088
    assert actor["master_weights"] == 4 * N6 // 8
    assert actor["optimizer_state"] == 8 * N6 // 8
    # frozen models are sharded the same way: bf16 ÷ 8
    assert rollout.role_bytes("reference") == 2 * N6 // 8
    # a sharded forward gathers the largest unit: the tied embedding 50,257 × 4,096 = 205,852,672
    # params (> one layer: 12·h² + 13·h = 201,379,840), and ZeRO-3 prefetches 5e7 more, × 2 B
    score_ref = {
        c.name: c.bytes for c in est.phase("score ref").components if c.role == "reference"
    }
    assert score_ref["gathered_parameters"] == (205_852_672 + 50_000_000) * 2
    fsdp = _ppo(num_gpus=8, fsdp="full").phase("score ref")
    gathered = [c.bytes for c in fsdp.components if c.name == "gathered_parameters"]
    assert gathered == [2 * 205_852_672 * 2]  # FSDP prefetches the next whole unit
    # FLOPs cover all 8 data-parallel ranks
    single = _ppo()
    assert est.total_flops == 8 * single.total_flops


def test_ppo_lora_reference_shares_the_base() -> None:
    est = _ppo(method="lora", lora_rank=16)
    train = est.phase("train actor")
    assert train.role_bytes("reference") == 0
    # the actor's frozen base stays in bf16 (2 B/param); adapters and their Adam state are small
    actor = {c.name: c.bytes for c in train.components if c.role == "actor"}
    assert actor["weights"] == 2 * N6
    assert actor["optimizer_state"] < 0.05 * N6
    apart = _ppo(method="lora", lora_rank=16, reference_shares_base=False)
    assert apart.phase("train actor").role_bytes("reference") == 2 * N6
    assert apart.total_bytes - est.total_bytes == 2 * N6
    # LoRA trains without the frozen weights' gradients: 4·N per token instead of 6·N; attention
    # has no weights, its backward (Q, K, V gradients) stays: 12 × 32 layers × H·Q × 512 tokens
    tokens = 8 * 512
    assert est.flops[-1].flops == (4 * MM6_RM + 12 * 32 * H6 * 512) * tokens
    assert est.total_bytes < 0.3 * _ppo().total_bytes


def test_cli_zero3_json() -> None:
    result = CliRunner().invoke(
        app,
        ["rlhf", "instructgpt-6b", "--stage", "ppo", "--num-gpus", "8", "--zero", "3", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["num_gpus"] == 8
    assert data["inputs"]["training_options"] == {"num_gpus": 8, "zero": 3}


def test_separate_placement_with_gpus_per_model() -> None:
    est = _ppo(
        num_gpus=16,
        zero=3,
        placement="separate",
        role_gpus={"critic": 4, "reference": 8, "reward": 2},
        batch_size=1,
        rollout_batch=2,
    )
    gpus = {g.name: g.num_gpus for g in est.groups}
    assert gpus == {"actor": 16, "critic": 4, "reference": 8, "reward": 2}
    assert est.num_gpus == 30
    # the reference's 8 GPUs each hold a ZeRO-3 eighth of its bf16 weights and score the
    # sequences of 16 actor ranks: 2 × 16 / 8 = 4 sequences per reference rank
    ref = est.phase("score ref")
    weights = [c.bytes for c in ref.components if c.role == "reference" and c.name == "weights"]
    assert weights == [2 * N6 // 8]
    acts = [c.note for c in ref.components if c.role == "reference" and c.name == "activations"]
    assert acts[0].startswith("no-grad forward, 4×512 tokens")
    # the critic trains 1 × 16 / 4 = 4 sequences per rank: the same global batch
    critic = [c.note for c in est.phase("train critic").components if c.name == "activations"]
    assert "4×512 tokens" in critic[0]


def test_gpus_per_model_errors() -> None:
    with pytest.raises(VramcalcError, match="separate"):
        _ppo(role_gpus={"critic": 8})
    with pytest.raises(VramcalcError, match="no model 'critic' in the grpo stage"):
        estimate_rlhf("gpt2", stage="grpo", placement="separate", role_gpus={"critic": 8})


def test_cli_role_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["rlhf", "gpt2", "--stage", "ppo", "--placement", "separate", "--json"]
    result = CliRunner().invoke(app, [*argv, "--role-gpus", "critic=2,reward=1"])
    assert result.exit_code == 0, result.output
    groups = {g["name"]: g["num_gpus"] for g in json.loads(result.stdout)["groups"]}
    assert groups == {"actor": 1, "critic": 2, "reference": 1, "reward": 1}
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--role-gpus", "critic:2"])
    assert exc.value.code == 2
    assert "role=count" in capsys.readouterr().err


def test_scoring_batch() -> None:
    est = estimate_rlhf(
        "llama-2-7b", stage="grpo", rollout_batch=4, group_size=8, prompt_len=512, response_len=512
    )
    ref = est.phase("score ref")
    acts = [c.bytes for c in ref.components if c.role == "reference" and c.name == "activations"]
    # TRL scores in chunks of the training batch (1 sequence of 1,024 tokens). After the layers only
    # the logits of every position in bf16 and their fp32 copy are alive (traced; see
    # inference_activation_bytes): 1,024 × 32,000 × (2 + 4) B, larger than any layer's workspace
    assert acts == [1024 * 32000 * 6] == [196_608_000]
    # PPO scores the whole rollout by default (DeepSpeed-Chat); --score-batch chunks it
    whole = _ppo(rollout_batch=8).phase("score ref").role_bytes("reference")
    chunked = _ppo(rollout_batch=8, score_batch=2).phase("score ref").role_bytes("reference")
    per_seq = 512 * 50257 * 6  # all-position logits and their fp32 copy, per sequence
    assert whole - chunked == 6 * per_seq


def test_rollout_weight_copy_and_fp8_frozen() -> None:
    shared = _ppo().phase("rollout")
    copy = _ppo(rollout_weights="copy", rollout_tp=4).phase("rollout")
    # a bf16 inference copy of the actor split over 4 GPUs: 2 B × 6,658,404,352 / 4
    extra = [c.bytes for c in copy.components if c.name == "rollout_weights"]
    assert extra == [2 * N6 // 4]
    assert copy.role_bytes("actor") - shared.role_bytes("actor") == 2 * N6 // 4
    # fp8 frozen models: one byte per linear weight + a fp32 scale per tensor, the rest in bf16
    fp8 = _ppo(frozen_dtype="fp8").phase("train actor")
    linear = 32 * (4 * 4096**2 + 2 * 4096 * 16384)
    assert fp8.role_bytes("reference") == linear + 4 * 32 * 6 + 2 * (N6 - linear)


def test_offloaded_frozen_models_report_host_memory() -> None:
    # one GPU: the reference (2 B × N) and reward (2 B × (N + h)) wait in host memory
    off = _ppo(offload_frozen=True)
    assert off.cpu_bytes_per_node == 2 * N6 + 2 * N6_RM
    assert _ppo().cpu_bytes_per_node == 0


def test_cli_separate_table_has_one_table_per_group() -> None:
    result = CliRunner().invoke(
        app, ["rlhf", "gpt2", "--stage", "ppo", "--placement", "separate", "--offload-frozen"]
    )
    assert result.exit_code == 0, result.output
    for group in ("actor", "critic", "reference", "reward"):
        assert f"group '{group}'" in result.stdout
    assert "host memory per node" in result.stdout


def test_band_and_verdict_per_group() -> None:
    """Each group's peak carries the error band of its peak phase's components (results.error_band,
    as every estimate does), and the fit verdict follows it: tight inside the band."""
    from vramcalc.core.results import Component, error_band

    est = _ppo(rollout_batch=8)
    group = est.groups[0]
    at_peak = est.phase(group.peak_phase)
    kind = "training" if group.peak_phase.startswith("train") else "inference"
    comps = [Component(name=c.name, bytes=c.bytes) for c in at_peak.components]
    assert (group.low_bytes, group.high_bytes) == error_band(comps, kind, weights_only=False)
    assert est.low_bytes < est.total_bytes < est.high_bytes
    gib = 2**30
    inside = (est.total_bytes + est.high_bytes) / 2 / gib
    assert _ppo(rollout_batch=8, gpu_mem_gib=inside).gpu.verdict == "tight"  # type: ignore[union-attr]
    roomy = _ppo(rollout_batch=8, gpu_mem_gib=est.high_bytes / gib + 1)
    assert roomy.gpu is not None and roomy.gpu.verdict == "fits"
    short = _ppo(rollout_batch=8, gpu_mem_gib=est.low_bytes / gib - 1)
    assert short.gpu is not None and short.gpu.verdict == "does not fit" and not short.gpu.fits


def test_rollout_slack_counts_only_transient_bytes() -> None:
    """Which bytes the allocator slack of a phase covers comes from each component's lifetime:
    the rollout's KV cache and prefill activations come and go; weights, optimizer state and the
    experience buffer stay (vramcalc.core.results.Lifetime)."""
    est = estimate_rlhf("gpt2", stage="ppo", prompt_len=256, response_len=256, rollout_batch=8)
    rollout = est.phase("rollout")
    by_name = {c.name: c.bytes for c in rollout.components if c.role == "actor"}
    # KV: 2 (K, V) × 12 layers × 768 × 2 B (bf16) per token × 8 sequences × 512 tokens
    assert by_name["kv_cache"] == 2 * 12 * 768 * 2 * 8 * 512 == 150_994_944
    slack = [c for c in rollout.components if c.name == "allocator_slack"]
    assert [c.bytes for c in slack] == [_slack(by_name["kv_cache"] + by_name["activations"])]
    # the lifetime is internal: the JSON of a component is unchanged
    assert set(rollout.components[0].model_dump()) == {"role", "group", "name", "bytes", "note"}
