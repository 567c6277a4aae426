"""Benchmarks of the pipeline's hot paths; run them with `make benchmark` (see run.py)."""
