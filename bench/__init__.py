"""Benchmarks of svc (not part of the test suite): ``python -m bench`` from the repository root."""
