#!/usr/bin/env python
"""Benchmark TransferClassifier variants (parameters, MACs, CPU latency, peak memory) into docs/benchmarks.md.

2D: ResNet-50 at 3x224x224 (the TruncatedTL paper's BIMCV setting). 3D: ResNet-50 inflated to 3D at a CT-like input
(3 HU windows x 192 x 192 pixels x 64 slices, MONAI's channel-x-y-z layout). Checks the target: the default 3D truncated model has <= 1/4 of the
parameters and <= 1/2 of the MACs and CPU latency of the fully inflated ResNet-50 (I3D stem: 7x7x7, stride 2).

With ``--liftings`` it benchmarks instead the bundle's network (train.json: ResNet-50, cut 10, 3 channels) lifted to
3D three ways (inflate, 2.5D slices with and without slice chunks, ACS; docs/lifting.md) at the bundle's CT input and
at a 512 x 512 x 300-slice scan, and checks the target: the chunked 2.5D model's peak inference memory at that scan
within 2 GiB on the CPU (section ``bench_networks_liftings``). Rows that would need more memory than the machine has
free (less ``--reserve_gib``) are reported as skipped.

Usage:
    python scripts/bench_networks.py [--repeats 5] [--benchmarks docs/benchmarks.md] [--quick]
    python scripts/bench_networks.py --liftings [--chunk_slices 8] [--large_repeats 1] [--reserve_gib 4] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time

import torch

from medtl_monai.bundle import load_config
from medtl_monai.networks import TransferClassifier, profile_model
from medtl_monai.networks.profile import count_macs, count_parameters
from medtl_monai.utils import machine_description, update_benchmark_section

INPUT_2D = (1, 3, 224, 224)
INPUT_3D = (1, 3, 192, 192, 64)  # MONAI layout: (batch, channel, x, y, z)
I3D_STEM = {"stem_depth_kernel": 7, "stem_depth_stride": 2, "pool_depth_stride": 2}
DEFAULT_3D_CUT = 10
BUNDLE_TRAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bundles", "bimcv_truncated",
                            "configs", "train.json")
LARGE_CT = (1, 3, 512, 512, 300)  # a full-resolution chest CT: 512 x 512 pixels x 300 slices
QUICK_LARGE_CT = (1, 3, 128, 128, 40)

VARIANTS_2D = [
    ("full", {}),
    ("block cut layer1", {"cut": "layer1"}),
    ("block cut layer2", {"cut": "layer2"}),
    ("block cut layer3", {"cut": "layer3"}),
    ("layer cut 7 (end of layer2)", {"cut": 7}),
    ("layer cut 11 (TTL-2)", {"cut": 11}),
    ("layer cut 9 (2 of 6 layer3 blocks)", {"cut": 9}),
    ("TF-slim after layer3", {"slim_after": "layer3"}),
]
VARIANTS_3D = [
    ("full, I3D stem 7x7x7/2 (baseline)", dict(I3D_STEM)),
    ("full, default stem", {}),
    ("block cut layer2, default stem", {"cut": "layer2"}),
    ("block cut layer3, default stem", {"cut": "layer3"}),
    ("block cut layer3, I3D stem", {"cut": "layer3", **I3D_STEM}),
    ("layer cut 11 (TTL-2), default stem", {"cut": 11}),
    (f"layer cut {DEFAULT_3D_CUT}, default stem (bundle default)", {"cut": DEFAULT_3D_CUT}),
    ("TF-slim after layer3, default stem", {"slim_after": "layer3"}),
]


def _proc_kib(path: str, field: str) -> int | None:
    """A ``<field>: <n> kB`` line of a ``/proc`` file, in KiB (``None`` off Linux or when absent)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _status_kib(field: str) -> int | None:
    """A ``VmRSS`` / ``VmHWM`` line of ``/proc/self/status``, in KiB (``None`` off Linux)."""
    return _proc_kib("/proc/self/status", field)


def _release_freed_memory() -> None:
    """Collect garbage and hand freed heap memory back to the system, so that resident memory is what is in use."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_high_water_mark() -> None:
    """Set the kernel's resident high-water mark (``VmHWM``) to the current resident size (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _meminfo_kib(field: str) -> int | None:
    """A line of ``/proc/meminfo`` (e.g. ``MemAvailable``), in KiB (``None`` off Linux)."""
    return _proc_kib("/proc/meminfo", field)


def _limit_memory(reserve_mib: float) -> float | None:
    """Cap this process's address space so that at least ``reserve_mib`` of the machine's available memory stays free.

    A pass that needs more then fails with an allocation error (caught by :func:`forward_cost`) instead of pushing the
    machine, which other jobs share, into swap or the OOM killer.

    Returns:
        The MiB this process may still add, or ``None`` when ``/proc`` does not say (no cap set).
    """
    import resource

    available, size = _meminfo_kib("MemAvailable"), _status_kib("VmSize")
    if available is None or size is None:
        return None
    budget_kib = max(available - int(reserve_mib * 1024), 0)
    limit = (size + budget_kib) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return budget_kib / 1024


def _build(spatial_dims: int, kwargs: dict) -> torch.nn.Module:
    """The benchmarked network: ResNet-50, 3 channels, 2 classes unless ``kwargs`` says otherwise, in eval mode."""
    settings = {"arch": "resnet50", "in_channels": 3, "num_classes": 2, **kwargs}
    return TransferClassifier(spatial_dims=spatial_dims, **settings).eval()


def forward_cost(spatial_dims: int, kwargs: dict, shape: tuple[int, ...], *, warmup: int = 1, repeats: int = 0,
                 reserve_mib: float | None = None) -> dict:
    """Memory (and optionally wall time) a variant needs to run, from this process's resident memory (run it in a
    fresh one).

    Baseline: resident memory once torch has run a tiny convolution (libraries and thread pools loaded). Then the
    model is built, run ``warmup`` times untimed (one-time allocations: kernel caches, weight reorders), freed memory
    is handed back (``malloc_trim``), the high-water mark is reset (``/proc/self/clear_refs``) and one forward pass
    runs; that pass and ``repeats - 1`` more are timed.

    Args:
        spatial_dims: 2 or 3.
        kwargs: :class:`TransferClassifier` arguments (ResNet-50, 3 channels, 2 classes unless given).
        shape: the input shape, batch included.
        warmup: untimed passes before the measured one (0: the measured pass also pays the one-time allocations, as
            a single inference of one large scan does).
        repeats: timed passes (the measured pass is the first); 0: none timed.
        reserve_mib: when given, memory of the machine this process leaves free (:func:`_limit_memory`); a variant
            that needs more is reported as skipped instead of measured.

    Returns:
        ``{"peak_mib", "activations_mib", "latency_ms"}``: the high-water mark of the measured pass above the
        baseline (weights, input, caches and the pass's own peak: what running the model costs), and above the
        resident memory just before the pass (activations and work buffers only); the median timed pass (``None``
        when ``repeats`` is 0). ``{"skipped": reason}`` when the memory left by ``reserve_mib`` did not suffice.

    Raises:
        OSError: ``/proc/self/status`` or ``/proc/self/clear_refs`` is not available (not Linux).
    """
    torch.nn.functional.conv2d(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 3, 3))
    _release_freed_memory()
    baseline = _status_kib("VmRSS")
    budget = _limit_memory(reserve_mib) if reserve_mib is not None else None
    times = []
    try:
        model = _build(spatial_dims, kwargs)
        x = torch.randn(*shape)
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            _release_freed_memory()
            before = _status_kib("VmRSS")
            _reset_high_water_mark()
            for i in range(max(repeats, 1)):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
                if i == 0:
                    peak = _status_kib("VmHWM")
    except (MemoryError, RuntimeError) as error:
        if budget is None or not isinstance(error, MemoryError) and "alloc" not in str(error):
            raise
        return {"skipped": f"needs more than the {budget:.0f} MiB it was allowed (the machine's available memory "
                           f"less {reserve_mib / 1024:.0f} GiB kept free for other jobs)"}
    if None in (baseline, before, peak):
        raise OSError("/proc/self/status has no VmRSS / VmHWM: memory is measured on Linux only")
    return {"peak_mib": (peak - baseline) / 1024, "activations_mib": (peak - before) / 1024,
            "latency_ms": 1000.0 * statistics.median(times) if repeats else None}


def _cost_in_fresh_process(spatial_dims: int, kwargs: dict, shape: tuple[int, ...], **options) -> dict:
    """:func:`forward_cost` in a new Python process, with this one's torch thread count.

    A child that dies (killed for memory, a crash in a kernel) is reported as ``{"skipped": reason}``.
    """
    job = json.dumps({"spatial_dims": spatial_dims, "kwargs": kwargs, "shape": list(shape), "options": options,
                      "threads": torch.get_num_threads()})
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure_memory", job],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        if options.get("reserve_mib") is None:
            raise RuntimeError(f"{__file__}: measuring {kwargs} at {shape} failed: {tail}")
        return {"skipped": f"the measuring process ended with status {done.returncode} ({tail})"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _memory_in_fresh_process(spatial_dims: int, kwargs: dict, shape: tuple[int, ...]) -> tuple[float, float]:
    """Peak and activation memory (MiB) of one forward pass, measured by :func:`forward_cost` in a fresh process."""
    cost = _cost_in_fresh_process(spatial_dims, kwargs, shape)
    return float(cost["peak_mib"]), float(cost["activations_mib"])


def _rows(spatial_dims: int, variants, shape, repeats: int) -> list[tuple[str, object, float]]:
    rows = []
    for name, kwargs in variants:
        model = TransferClassifier("resnet50", spatial_dims=spatial_dims, in_channels=3, num_classes=2, **kwargs)
        prof = profile_model(model, shape, repeats=repeats, warmup=1, memory=False)
        del model
        prof.peak_mb, activations = _memory_in_fresh_process(spatial_dims, kwargs, shape)
        print(f"{spatial_dims}D {name:50s} {prof.params / 1e6:7.2f}M {prof.macs / 1e9:7.2f} GMAC "
              f"{prof.latency_ms:9.1f} ms {prof.peak_mb:8.1f} MiB (activations {activations:.1f})", flush=True)
        rows.append((name, prof, activations))
    return rows


def _table(rows, ref) -> str:
    lines = [
        ("| variant | params (M) | MACs (G) | CPU latency (ms, median) | peak memory (MiB) | of which activations (MiB) "
         "| params / ref | MACs / ref | latency / ref | peak memory / ref |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, p, activations in rows:
        lines.append(
            f"| {name} | {p.params / 1e6:.2f} | {p.macs / 1e9:.2f} | {p.latency_ms:.1f} | {p.peak_mb:.0f} | "
            f"{activations:.0f} | {p.params / ref.params:.2f} | {p.macs / ref.macs:.2f} | "
            f"{p.latency_ms / ref.latency_ms:.2f} | {p.peak_mb / ref.peak_mb:.2f} |"
        )
    return "\n".join(lines)


def bundle_network(train_json: str | os.PathLike = BUNDLE_TRAIN) -> tuple[dict, tuple[int, ...]]:
    """The bundle's default network and its CT input, read from its ``train.json`` (and metadata).

    Returns:
        ``(kwargs, shape)``: :class:`TransferClassifier` arguments (``arch``, ``cut``, ``in_channels``) and the input
        shape of one case, batch 1.
    """
    get = load_config(None, str(train_json)).get_parsed_content
    size, dims = get("image_size"), int(get("spatial_dims"))
    spatial = [int(size)] * dims if isinstance(size, (int, float)) else [int(s) for s in size]
    kwargs = {"arch": str(get("arch")), "cut": get("cut"), "in_channels": int(get("in_channels"))}
    return kwargs, (1, kwargs["in_channels"], *spatial)


def lifting_variants(base: dict, chunk_slices: int) -> list[tuple[str, dict]]:
    """The bundle's network under each lifting (docs/lifting.md); the 2.5D one with and without slice chunks."""
    slices = {**base, "lifting": "slices", "slab": 1, "slice_stride": 1, "aggregator": "mean"}
    return [
        ("inflate (bundle default)", {**base, "lifting": "inflate"}),
        (f"slices: slab 1, mean, chunk {chunk_slices}", {**slices, "chunk_slices": chunk_slices}),
        ("slices: slab 1, mean, unchunked", {**slices, "chunk_slices": None}),
        ("acs", {**base, "lifting": "acs"}),
    ]


def _meta_counts(kwargs: dict, shape: tuple[int, ...]) -> tuple[int, int]:
    """Parameters and MACs of a 3D variant at an input, counted on PyTorch's meta device (shapes only, no compute)."""
    model = _build(3, kwargs).to("meta")
    return count_parameters(model), count_macs(model, torch.empty(*shape, device="meta"))


def _lifting_rows(variants: list[tuple[str, dict]], shape: tuple[int, ...], **options) -> list[dict]:
    """One row per variant: parameters, MACs, and :func:`forward_cost` (``options``) in a fresh process."""
    rows = []
    for name, kwargs in variants:
        params, macs = _meta_counts(kwargs, shape)
        cost = _cost_in_fresh_process(3, kwargs, shape, **options)
        row = {"name": name, "params": params, "macs": macs, **cost}
        shown = row.get("skipped") or (f"{row['latency_ms'] / 1000:8.2f} s {row['peak_mib']:8.0f} MiB "
                                       f"(activations {row['activations_mib']:.0f})")
        print(f"{'x'.join(map(str, shape[1:])):14s} {name:40s} {params / 1e6:6.2f}M {macs / 1e9:8.1f} GMAC {shown}",
              flush=True)
        rows.append(row)
    return rows


def _lifting_table(rows: list[dict]) -> str:
    """Markdown table of :func:`_lifting_rows`, with ratios against the first (inflated) row."""
    ref = rows[0]

    def ratio(row: dict, key: str) -> str:
        ok = "skipped" not in row and "skipped" not in ref
        return f"{row[key] / ref[key]:.2f}" if ok else "—"

    lines = [
        ("| lifting | params (M) | MACs (G) | CPU latency (s) | peak memory (MiB) | of which activations (MiB) "
         "| MACs / inflate | latency / inflate | peak memory / inflate |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "skipped" in row:
            cost = f"— | skipped: {row['skipped']} | —"
        else:
            cost = f"{row['latency_ms'] / 1000:.2f} | {row['peak_mib']:.0f} | {row['activations_mib']:.0f}"
        lines.append(f"| {row['name']} | {row['params'] / 1e6:.2f} | {row['macs'] / 1e9:.1f} | {cost} | "
                     f"{row['macs'] / ref['macs']:.2f} | {ratio(row, 'latency_ms')} | {ratio(row, 'peak_mib')} |")
    return "\n".join(lines)


def lifting_section(args: argparse.Namespace) -> str:
    """Benchmark the liftings of the bundle's network at its CT input and at a full-resolution scan; the Markdown."""
    start, load_before = time.time(), os.getloadavg()[0]
    base, ct_shape = bundle_network(args.bundle_config)
    large = QUICK_LARGE_CT if args.quick else LARGE_CT
    variants = lifting_variants(base, args.chunk_slices)
    reserve = args.reserve_gib * 1024
    rows_ct = _lifting_rows(variants, ct_shape, warmup=1, repeats=args.repeats, reserve_mib=reserve)
    rows_large = _lifting_rows(variants, large, warmup=0, repeats=args.large_repeats, reserve_mib=reserve)
    run = {"seconds": time.time() - start, "load": (load_before, os.getloadavg()[0]), "machine": machine_description()}
    return render_lifting_section(args, base, ct_shape, large, rows_ct, rows_large, run)


def _chunk_accounting(chunked: dict, large: tuple[int, ...], chunk_slices: int) -> str:
    """Where the chunked 2.5D model's peak goes: the input, the slab stack built before chunking, and the rest."""
    input_mib = math.prod(large) * 4 / 2**20  # float32; slab 1: the stack is one copy of the volume
    rest = chunked["peak_mib"] - 2 * input_mib
    return (f"Of the chunked 2.5D model's peak, {input_mib:.0f} MiB is the input volume (float32) and another "
            f"{input_mib:.0f} MiB the slab stack\nthat `SliceBackbone.to_slabs` builds from all of it before the "
            f"first chunk runs (slab 1: one copy of the volume);\nthe remaining {rest:.0f} MiB are the weights and "
            f"one chunk of {chunk_slices} {large[2]}x{large[3]} images' activations. Chunking bounds the\n"
            f"activations, not the stack: a stack built chunk by chunk would leave about {input_mib + rest:.0f} MiB "
            f"(estimate: input + the\nremainder).\n")


def render_lifting_section(args: argparse.Namespace, base: dict, ct_shape: tuple[int, ...], large: tuple[int, ...],
                           rows_ct: list[dict], rows_large: list[dict], run: dict) -> str:
    """The Markdown of the liftings section from its measured rows.

    Args:
        args: the command line (repeats, chunk, reserve, quick, bundle config).
        base: the bundle's network arguments (:func:`bundle_network`).
        ct_shape: the bundle's CT input shape; large: the full-resolution input shape.
        rows_ct: :func:`_lifting_rows` at ``ct_shape``; rows_large: the same at ``large`` (the chunked 2.5D row second).
        run: ``{"seconds", "load": (before, after), "machine"}`` of the run.

    Returns:
        The section's Markdown, without the begin / end markers.
    """
    chunked = rows_large[1]
    if "skipped" in chunked:
        verdict, accounting = f"not measured ({chunked['skipped']})", ""
    else:
        within = chunked["peak_mib"] <= 2048
        verdict = (f"{'met' if within else 'MISSED'}: {chunked['peak_mib']:.0f} MiB ({chunked['peak_mib'] / 1024:.2f} "
                   f"GiB),\n{chunked['activations_mib']:.0f} MiB of it above the resident memory with the model built "
                   "and the scan loaded")
        accounting = _chunk_accounting(chunked, large, args.chunk_slices)
    latencies = ", ".join(f"{r['name'].split(':')[0].split(' (')[0]} {r['latency_ms'] / 1000:.1f} s"
                          for r in rows_large if "skipped" not in r and "unchunked" not in r["name"])
    command = (f"python scripts/bench_networks.py --liftings --repeats {args.repeats} --large_repeats "
               f"{args.large_repeats} --chunk_slices {args.chunk_slices} --reserve_gib {args.reserve_gib:g}"
               f"{' --quick' if args.quick else ''}")
    net = f"{base['arch']}, cut {base['cut']}, {base['in_channels']} channels"
    scan = "a smaller stand-in for a full-resolution scan (--quick)" if args.quick else "a full-resolution scan"
    return f"""## Liftings of the bundle's network (`scripts/bench_networks.py --liftings`)

Machine: {run['machine']}.
Command: `{command}`
({run['seconds']:.0f} s); 1-minute load average {run['load'][0]:.1f} before and {run['load'][1]:.1f} after: the cores \
are shared with
other jobs, so latencies are as noisy as that.
Network: the bundle default ({net}; `{os.path.relpath(args.bundle_config)}`), 2 classes,
random weights, batch 1, eval mode, `torch.inference_mode()`, lifted three ways (docs/lifting.md). Parameters and
MACs are counted on PyTorch's meta device (`torch.utils.flop_counter`, FLOPs / 2; shapes only, so the large input
costs nothing to count). Latency and memory are measured in a fresh process per row, as in the section above: peak
memory is the resident high-water mark of one forward pass above torch alone, so it includes the weights and the
input volume; "of which activations" is above the resident memory with the model built and the input loaded. A row
whose process would need more memory than the machine has free (less {args.reserve_gib:g} GiB kept for other \
jobs; enforced with an
address-space limit) is reported as skipped.

### At the bundle's CT input, {'x'.join(map(str, ct_shape[1:]))} (median of {args.repeats} pass{"es" if args.repeats != 1 else ""} after an untimed one)

{_lifting_table(rows_ct)}

### At {scan}, {'x'.join(map(str, large[1:]))} ({args.large_repeats} timed pass, no untimed pass first: one scan's \
inference)

{_lifting_table(rows_large)}

**Target** (the `slices` model's peak inference memory at {'x'.join(map(str, large[2:]))} within 2 GiB on the CPU \
with chunking,
chunk {args.chunk_slices}): {verdict}.
Latency at this input: {latencies}.
{accounting}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed forward passes per model (median reported)")
    parser.add_argument("--benchmarks", default="docs/benchmarks.md", help="Markdown file to update")
    parser.add_argument("--quick", action="store_true", help="smaller 3D input, for a smoke run")
    parser.add_argument("--liftings", action="store_true",
                        help="benchmark the liftings of the bundle's network instead (section bench_networks_liftings)")
    parser.add_argument("--bundle_config", default=BUNDLE_TRAIN, help="train.json of the bundle (for --liftings)")
    parser.add_argument("--chunk_slices", type=int, default=8, help="slice chunk of the 2.5D model (for --liftings)")
    parser.add_argument("--large_repeats", type=int, default=1,
                        help="timed passes at the full-resolution scan (for --liftings)")
    parser.add_argument("--reserve_gib", type=float, default=4.0,
                        help="memory kept free for other jobs; rows needing more are skipped (for --liftings)")
    parser.add_argument("--measure_memory", help=argparse.SUPPRESS)  # internal: one measurement, in a fresh process
    args = parser.parse_args(argv)
    logging.getLogger("medtl_monai").setLevel(logging.ERROR)
    if args.measure_memory:
        job = json.loads(args.measure_memory)
        torch.set_num_threads(int(job["threads"]))
        print(json.dumps(forward_cost(job["spatial_dims"], job["kwargs"], tuple(job["shape"]), **job["options"])))
        return 0
    if args.liftings:
        update_benchmark_section(args.benchmarks, "bench_networks_liftings", lifting_section(args))
        print(f"wrote {args.benchmarks}")
        return 0
    shape_3d = (1, 3, 64, 64, 16) if args.quick else INPUT_3D
    start = time.time()
    rows2 = _rows(2, VARIANTS_2D, INPUT_2D, args.repeats)
    rows3 = _rows(3, VARIANTS_3D, shape_3d, args.repeats)
    ref = rows3[0][1]
    profiles3 = {name: prof for name, prof, _ in rows3}
    default = profiles3[f"layer cut {DEFAULT_3D_CUT}, default stem (bundle default)"]
    checks = {
        "params <= 1/4": default.params <= ref.params / 4,
        "MACs <= 1/2": default.macs <= ref.macs / 2,
        "CPU latency <= 1/2": default.latency_ms <= ref.latency_ms / 2,
    }
    stem_mib = 64 * math.prod(s // 2 for s in shape_3d[2:]) * 4 / 2**20
    stem_note = "" if args.quick else (
        "The activation peak is the same for every 3D variant: both stems have stride 2 on every axis, and the stem\n"
        f"convolution's output and its BatchNorm's output (64 x {'x'.join(str(s // 2) for s in shape_3d[2:])}, "
        f"{stem_mib:.0f} MiB each in float32)\nare alive together before any later stage runs; the variants' peak "
        "memory differs by their weights.\n")
    verdict = ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in checks.items())
    body = f"""## Networks (`scripts/bench_networks.py`)

Machine: {machine_description()}.
Command: `python scripts/bench_networks.py --repeats {args.repeats}{' --quick' if args.quick else ''}` ({time.time() - start:.0f} s).
Batch 1, eval mode, `torch.inference_mode()`, random weights, 2 classes. MACs from `torch.utils.flop_counter`
(FLOPs / 2). Peak memory: measured in a fresh process per variant from its resident memory: the high-water mark
(`VmHWM`, reset through `/proc/self/clear_refs` after an untimed pass and `malloc_trim`) of one forward pass above
the resident memory of torch alone, i.e. what running the variant costs (weights, input, kernel caches and the
pass's peak); "of which activations" is the same mark above the resident memory just before the pass.

### 2D ResNet-50 at {'x'.join(map(str, INPUT_2D[1:]))} (TruncatedTL's BIMCV setting; ratios against the full network)

{_table(rows2, rows2[0][1])}

The paper reports 23.5M / 4.12 GMAC (full) and 6.31M / 2.87 GMAC (TTL-2).

### 3D ResNet-50, centre-inflated, at {'x'.join(map(str, shape_3d[1:]))} (ratios against the I3D-stem full network)

{_table(rows3, ref)}

Default stem: depth kernel 3, depth stride 2, max-pool depth stride 4 (depth reduced 8x, in-plane 4x).
{stem_note}**Target** for the bundle default (layer cut {DEFAULT_3D_CUT}, default stem) against the fully inflated ResNet-50: {verdict}.
Truncation alone barely reduces 3D compute (compare "block cut layer3, I3D stem" with the baseline): the stem and
layer1 dominate, so the stem's depth stride is what halves the MACs. A layer cut at 11 (TTL-2) keeps
{profiles3['layer cut 11 (TTL-2), default stem'].params / ref.params:.2f} of the parameters in 3D, because
inflation triples the 3x3 kernels that layer3 is made of; hence the default cut at {DEFAULT_3D_CUT}.
"""
    update_benchmark_section(args.benchmarks, "bench_networks", body)
    print(f"wrote {args.benchmarks}; target: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
