"""Side-by-side performance harness for procman (``python -m benchmarks``).

Every configuration runs in its own fresh interpreter (:mod:`benchmarks.worker`),
configurations alternate across rounds, and the report gives medians and
ratios to the bare-asyncio baseline measured in the same run.
See ``docs/benchmarks.md``.
"""
