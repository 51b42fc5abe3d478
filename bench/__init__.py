"""Benchmark scripts (run each as `.venv/bin/python bench/NAME.py`) and their helpers."""
