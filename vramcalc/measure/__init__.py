"""Ground truth for the analytic model: the only package that imports torch / transformers.

* :mod:`vramcalc.measure.trace` — the exact peak of live tensor bytes of the Hugging Face reference
  implementation, run on fake tensors on the CPU (no GPU, no weights);
* :mod:`vramcalc.measure.live` — the same workload run for real on a CUDA GPU.
"""
