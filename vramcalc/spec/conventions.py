"""The memory-relevant conventions of a training stack, as one value the estimator reads.

The defaults are transformers + PEFT as users run them (today's behaviour). A framework profile
(``presets/frameworks/<name>.toml``) is a set of these values with their sources; every field is also
a flag of its own (``vramcalc train --loss fused --adapter-dtype bf16 ...``) so that a run can be
described exactly whatever stack it uses.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LossKind = Literal["standard", "chunked", "fused"]
AdapterDtype = Literal["fp32", "bf16", "fp16", "model"]


class Conventions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    framework: str = Field("hf", description="the profile these values came from")
    adapter_dtype: AdapterDtype = Field(
        "fp32",
        description="dtype LoRA A/B are stored and trained in: PEFT upcasts them to fp32 "
        "(autocast_adapter_dtype=True); LitGPT, torchtune and the QLoRA code keep the model's "
        "16-bit dtype ('model')",
    )
    fused_qkv_adapter: bool = Field(
        False, description="one LoRA pair over a fused q/k/v projection (LitGPT)"
    )
    quantized_lm_head: bool = Field(
        False, description="QLoRA quantizes the output head too (LitGPT bnb.nf4)"
    )
    loss: LossKind = Field(
        "standard",
        description="standard: full-vocabulary logits (and their fp32 upcast) materialised; "
        "chunked: cross-entropy over loss_chunks slices of the sequence (torchtune); fused: "
        "linear + cross-entropy fused so the logits never exist whole (Liger, Unsloth, cut-CE)",
    )
    loss_chunks: int = Field(8, ge=1, le=4096, description="slices of chunked cross-entropy")
    activation_offload: bool = Field(
        False, description="checkpointed activations kept on the host, not the GPU"
    )
    optimizer_in_backward: bool = Field(
        False, description="each parameter stepped and its gradient freed during backward"
    )
    paged_optimizer: bool = Field(
        False, description="optimizer state in unified memory (bitsandbytes paged optimizers)"
    )
    compile: bool = Field(False, description="torch.compile on the model")
    packing: bool = Field(False, description="samples packed into full sequences, no padding")
    kbit_prep_upcasts_to_fp32: bool = Field(
        True,
        description="QLoRA: PEFT's prepare_model_for_kbit_training (HF/TRL/Axolotl recipes) casts "
        "every non-quantized parameter (embeddings, norms, an unquantized head) to fp32; "
        "torchtune, LitGPT and Unsloth keep them in the model's 16-bit dtype",
    )
    full_state_dict_load: bool = Field(
        False,
        description="a sharded (FSDP) job loads the checkpoint as a full state dict into the "
        "wrapped model, which gathers it: each rank holds the whole 16-bit model beside its own "
        "shard while loading (Lit-GPT 2023: Fabric FSDPStrategy load_raw, state_dict_type='full')",
    )
    bnb_keeps_4bit_inputs: bool = Field(
        False,
        description="bitsandbytes < 0.43.2 kept every 4-bit layer's input alive until backward "
        "(fixed in bitsandbytes PR #1270)",
    )


DEFAULT_CONVENTIONS = Conventions()
