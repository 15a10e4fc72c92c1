"""Write one named section of ``docs/benchmarks.md`` without touching the sections other benchmarks own."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import torch

__all__ = ["machine_description", "update_benchmark_section"]

_HEADER = "# Benchmarks\n\nEach section is written by the script it names; rerun that script to refresh it.\n"


def machine_description() -> str:
    """Return a one-line description of this machine: CPU model, core count, torch threads, Python and torch versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def update_benchmark_section(path: str | os.PathLike, name: str, body: str) -> Path:
    """Replace (or append) the section ``name`` of a Markdown benchmark file, keeping every other section.

    A section is delimited by ``<!-- begin NAME -->`` and ``<!-- end NAME -->`` comments, so that several
    benchmark scripts can share one file.

    Args:
        path: the Markdown file, created with a short header if missing.
        name: section identifier, e.g. ``"bench_networks"``.
        body: Markdown text of the section (without the markers).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else _HEADER
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    return path
