"""Benchmarks: each prints what it measured and the ratio to its target, in one run."""
