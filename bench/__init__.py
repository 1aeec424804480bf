"""Benchmarks, run with `python -m bench [name]`; each module measures side by side in one run."""
