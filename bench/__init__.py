"""Benchmarks of Duebook against baselines measured in the same run: `python -m bench`
(see bench/README.md)."""
