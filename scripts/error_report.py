#!/usr/bin/env python
"""Write the error-analysis report of a bundle's evaluation (thin wrapper over
``medtl_monai.visualize.from_bundle.bundle_error_report``).

    python scripts/error_report.py --bundle bundles/bimcv_truncated [--threshold 0.5] [--dataset_dir ...]
    python scripts/error_report.py --bundle bundles/bimcv_truncated --config xray.json --image_size 224

Any other ``--key value`` pair overrides that key of the bundle's configs, as with ``python -m monai.bundle run``.
Output: ``<bundle>/eval/report/report.html`` (self-contained), the PNGs and ``relabel.csv``.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="bundle folder (holding configs/train.json)")
    parser.add_argument("--config", action="append", default=[], help="override file after train.json, e.g. xray.json (repeatable)")
    parser.add_argument("--predictions", default=None, help="predictions CSV (default <bundle>/eval/predictions.csv)")
    parser.add_argument("--output_dir", default=None, help="report folder (default <bundle>/eval/report)")
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold on p(class 1), two classes")
    parser.add_argument("--n_correct", type=int, default=5, help="most confident correct cases shown")
    parser.add_argument("--max_cases", type=int, default=None, help="misclassified cases shown (default all)")
    parser.add_argument("--cam_method", default="layercam", choices=["layercam", "gradcam"])
    parser.add_argument("--cam_layers", nargs="+", default=None, help="CAM target stages, fused (default: the last two stages)")
    args, rest = parser.parse_known_args(argv)
    if len(rest) % 2 or any(not k.startswith("--") for k in rest[::2]):
        parser.error(f"config overrides must be --key value pairs, got {rest}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from medtl_monai.visualize.from_bundle import bundle_error_report, parse_override

    overrides = {k[2:]: parse_override(v) for k, v in zip(rest[::2], rest[1::2])}
    path = bundle_error_report(
        args.bundle, args.config, overrides, predictions=args.predictions, output_dir=args.output_dir,
        threshold=args.threshold, n_correct=args.n_correct, max_cases=args.max_cases,
        cam_method=args.cam_method, cam_layers=args.cam_layers,
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
