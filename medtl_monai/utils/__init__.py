"""The lowest room: helpers every other room may use (option parsing, benchmark documents). Imports no other room."""

from .benchmarks_doc import machine_description, update_benchmark_section
from .options import as_bool, parse_value

__all__ = ["as_bool", "machine_description", "parse_value", "update_benchmark_section"]
