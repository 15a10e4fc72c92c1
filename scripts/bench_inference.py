#!/usr/bin/env python
"""CPU latency and throughput of the exported forms of the default models, into docs/benchmarks.md.

Forms: eager PyTorch (``torch.inference_mode``), TorchScript (``torch.jit.script``), TorchScript frozen and
``torch.jit.optimize_for_inference``, and ONNX Runtime (CPU provider) at several graph optimisation levels and
intra-op thread counts. Models (random weights, 2 classes): the 2D TTL-2 ResNet-50 (``cut=11``) at 3x224x224 and the
bundle's 3D ResNet-50 (``cut=10``, default stem) at 3x96x96x32 (the bundle's input) and at a CT-like 3x192x192x64;
each at batch 1 and a larger batch. Every form is checked against eager (max abs difference of the logits).
Target: the fastest exported form at least 1.3x faster than eager.

Usage:
    python scripts/bench_inference.py [--repeats 5] [--benchmarks docs/benchmarks.md] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from medtl_monai.export import export_onnx, max_abs_difference
from medtl_monai.networks import OnnxRuntimeNetwork
from medtl_monai.networks import TransferClassifier
from medtl_monai.utils import machine_description, update_benchmark_section

TARGET = 1.3
#: (label, TransferClassifier kwargs, per-sample input shape, batch sizes)
SETTINGS = [
    ("2D ResNet-50 TTL-2 (cut=11), 3x224x224", {"spatial_dims": 2, "cut": 11}, (3, 224, 224), (1, 8)),
    ("3D ResNet-50 cut=10 (bundle input), 3x96x96x32", {"spatial_dims": 3, "cut": 10}, (3, 96, 96, 32), (1, 4)),
    ("3D ResNet-50 cut=10, CT-like 3x192x192x64", {"spatial_dims": 3, "cut": 10}, (3, 192, 192, 64), (1, 2)),
]
QUICK = [
    ("2D ResNet-50 TTL-2 (cut=11), 3x64x64 (quick)", {"spatial_dims": 2, "cut": 11}, (3, 64, 64), (1, 2)),
    ("3D ResNet-50 cut=10, 3x32x32x16 (quick)", {"spatial_dims": 3, "cut": 10}, (3, 32, 32, 16), (1, 2)),
]
#: thread counts: torch.set_num_threads for the PyTorch forms, intra_op_num_threads for ONNX Runtime
THREADS = (1, 2)
ORT_LEVELS = ("basic", "all")


def _forms(
    model: torch.nn.Module, shape: tuple[int, ...], folder: Path, threads: tuple[int, ...]
) -> list[tuple[str, int, Callable]]:
    """(name, threads, callable) for every form; eager first for each thread count."""
    scripted = torch.jit.script(model)
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))
    onnx_path = export_onnx(model, folder / "model.onnx", (1, *shape), dynamic_batch=True, verify=False)
    forms: list[tuple[str, int, Callable]] = []
    for t in threads:
        forms += [("eager PyTorch", t, model), ("TorchScript (script)", t, scripted),
                  ("TorchScript (script + freeze + optimize_for_inference)", t, frozen)]
        for level in ORT_LEVELS:
            forms.append((f"ONNX Runtime ({level} graph optimisation)", t,
                          OnnxRuntimeNetwork(onnx_path, graph_optimization_level=level, intra_op_num_threads=t)))
    return forms


def _call(fn: Callable, threads: int, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    with torch.inference_mode():
        out = fn(x)
    return time.perf_counter() - start, torch.as_tensor(out).float()


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def bench(settings, repeats: int, warmup: int, threads: tuple[int, ...] = THREADS) -> tuple[list[str], list[str]]:
    """Run every setting; return the Markdown lines of the tables and of the target verdicts.

    The forms are interleaved: each of the ``repeats`` rounds runs every form once, so a change of the machine's
    load hits all forms alike; the median round is reported.
    """
    lines, verdicts = [], []
    for label, kwargs, shape, batches in settings:
        torch.manual_seed(0)
        model = TransferClassifier("resnet50", in_channels=3, num_classes=2, **kwargs).eval()
        with tempfile.TemporaryDirectory() as tmp:
            forms = _forms(model, shape, Path(tmp), threads)
            lines += [f"### {label}", "",
                      "| form | threads | batch | latency (ms, median) | throughput (samples/s) "
                      "| speed-up vs eager, same threads | max abs diff vs eager |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for batch in batches:
                x = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(batch))
                outs, times = {}, {i: [] for i in range(len(forms))}
                for i, (_, t, fn) in enumerate(forms):
                    for _ in range(warmup):
                        _, outs[i] = _call(fn, t, x)
                for _ in range(repeats):
                    for i, (_, t, fn) in enumerate(forms):
                        seconds, outs[i] = _call(fn, t, x)
                        times[i].append(seconds)
                med = {i: statistics.median(v) for i, v in times.items()}
                eager = {t: i for i, (n, t, _) in enumerate(forms) if n == "eager PyTorch"}
                for i, (name, t, _) in enumerate(forms):
                    ref = eager[t]
                    diff = max_abs_difference(outs[i], outs[ref])
                    lines.append(f"| {name} | {t} | {batch} | {med[i] * 1e3:.1f} | {batch / med[i]:.1f} | "
                                 f"{med[ref] / med[i]:.2f}x | {diff:.1e} |")
                    print(f"{label} | batch {batch} | {name:55s} {t} thr {med[i] * 1e3:9.1f} ms "
                          f"{med[ref] / med[i]:5.2f}x diff {diff:.1e} (load {_load()})", flush=True)
                best_eager = min(med[i] for i in eager.values())
                exported = [i for i, (n, _, _) in enumerate(forms) if n != "eager PyTorch"]
                best = min(exported, key=lambda i: med[i])
                speedup = best_eager / med[best]
                verdicts.append(f"- {label}, batch {batch}: fastest exported form {forms[best][0]} ({forms[best][1]} "
                                f"thread(s)) at {med[best] * 1e3:.1f} ms is {speedup:.2f}x the fastest eager "
                                f"({best_eager * 1e3:.1f} ms): {'met' if speedup >= TARGET else 'MISSED'}.")
            lines.append("")
    return lines, verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per form and batch (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (TorchScript profiles its first runs)")
    parser.add_argument("--threads", type=int, nargs="+", default=list(THREADS), help="thread counts to compare")
    parser.add_argument("--benchmarks", default="docs/benchmarks.md", help="Markdown file to update")
    parser.add_argument("--quick", action="store_true", help="tiny inputs, for a smoke run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    start, load_before = time.time(), _load()
    lines, verdicts = bench(QUICK if args.quick else SETTINGS, args.repeats, args.warmup, tuple(args.threads))
    command = "python scripts/bench_inference.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    body = [
        "## Inference: eager, TorchScript and ONNX Runtime on the CPU (`scripts/bench_inference.py`)",
        "",
        f"Machine: {machine_description()}, onnxruntime {_ort_version()}.",
        f"Command: `{command.strip()}` ({time.time() - start:.0f} s). Random weights, 2 classes, eval mode, "
        f"`torch.inference_mode()`; {args.warmup} untimed runs per form, then {args.repeats} rounds that run every form "
        "once (interleaved, so load changes hit all forms alike); the median round is reported. Threads: "
        "`torch.set_num_threads` for the PyTorch forms, `intra_op_num_threads` for ONNX Runtime. "
        f"1-minute load average {load_before} before and {_load()} after the run: the machine is shared with other "
        "jobs, and with more runnable threads than cores PyTorch's OpenMP thread team stalls (a 2-thread eager pass "
        "can be many times slower than a 1-thread one), so compare forms at the same thread count and read the "
        "best-of-threads verdicts below.",
        "ONNX export: `medtl_monai.export.export_onnx` (opset 17, dynamic batch); ONNX Runtime's CPU execution provider "
        "(`medtl_monai.export.OnnxRuntimeNetwork`).",
        "",
        *lines,
        f"**Target**: the fastest exported form >= {TARGET}x eager on the CPU:",
        *verdicts,
    ]
    update_benchmark_section(args.benchmarks, "bench_inference", "\n".join(body))
    print(f"wrote section bench_inference of {args.benchmarks}")
    return 0


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
