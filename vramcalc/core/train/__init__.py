"""The training estimator, one for 1..N GPUs (a single GPU is the default parallel plan).

* ``terms``: the memory terms, each a small function returning its bytes with the formula and note
  that produced them (``Term``), so ``--explain``, notes and numbers come from one expression;
* ``layouts``: one strategy per framework (torch, DeepSpeed ZeRO, FSDP, Megatron): bytes per
  trainable parameter, the transient weight copies and the communication buffers it allocates;
* ``saved``: the activations saved for backward, per token, with LoRA's and the stack conventions';
* ``stage``: one GPU of one pipeline stage at the peak of its step;
* ``conventions``: the training-stack conventions (vramcalc.spec.conventions) as terms.

``vramcalc.core.distributed`` assembles the stages of a job; ``vramcalc.core.training`` is the API.
"""
