"""Small helpers shared by the package and its scripts."""

from .benchmarks_doc import machine_description, update_benchmark_section

__all__ = ["machine_description", "update_benchmark_section"]
