#!/usr/bin/env python
"""Pretrain a backbone (any family: ResNet, DenseNet) on the synthetic proxy source and write a torchvision-format
weights file (an offline stand-in for ImageNet weights; see medtl_monai/synthetic/proxy_source.py). The file is NOT
ImageNet: its sidecar <file>.json says what it is.

Example (the weights of the strategy study in docs/benchmarks.md, ~5 min on 2 CPU cores):
    python scripts/make_proxy_weights.py --weights_path /tmp/proxy/resnet50-proxy.pth
    python scripts/compare_strategies.py ... --set weights=/tmp/proxy/resnet50-proxy.pth
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from medtl_monai.experiments.proxy_pretraining import pretrain_proxy_backbone


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, pretrain, print the summary; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights_path", required=True,
                        help="weights file to write, e.g. /tmp/proxy/resnet50-proxy.pth (+ <file>.json)")
    parser.add_argument("--arch", default="resnet50", help="e.g. resnet50, densenet121 (default resnet50)")
    parser.add_argument("--n_images", "--n-images", type=int, default=6000, help="training images (default 6000)")
    parser.add_argument("--n_val", "--n-val", type=int, default=500, help="held-out images for the accuracy (default 500)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    parser.add_argument("--batch_size", "--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--no_progress", "--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        summary = pretrain_proxy_backbone(args.weights_path, arch=args.arch, n_images=args.n_images,
                                          n_val=args.n_val, size=args.size, epochs=args.epochs,
                                          batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                                          progress=not args.no_progress)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
