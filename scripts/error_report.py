#!/usr/bin/env python
"""Write the error-analysis report of a bundle's evaluation (a thin wrapper over
``medtl_monai.explain.bundle_error_report``).

    python scripts/error_report.py --bundle bundles/bimcv_truncated [--threshold 0.5] [--dataset_dir ...]
    python scripts/error_report.py --bundle bundles/bimcv_truncated --config_file "['train.json','xray.json']"

``--config_file`` names the training configs the evaluation used (default ``train.json``); any other
``--key value`` pair overrides that key of the bundle's configs, as with ``python -m monai.bundle run``
(``--output_dir`` is the evaluation folder, as in the bundle). The model and its preprocessing come from the trained
model's card. Output: ``<output_dir>/report/report.html`` (self-contained), the PNGs and ``relabel.csv``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from medtl_monai.bundle import add_config_argument, parse_args_and_overrides, parse_config_files
from medtl_monai.explain import bundle_error_report


def main(argv: list[str] | None = None) -> int:
    """Parse the options, write the report, print its path; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="bundle folder (holding configs/train.json)")
    add_config_argument(parser, required=False, default="train.json")
    parser.add_argument("--predictions", default=None, help="predictions CSV (default <output_dir>/predictions.csv)")
    parser.add_argument("--report_dir", default=None, help="report folder (default <output_dir>/report)")
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold on p(class 1), two classes")
    parser.add_argument("--n_correct", type=int, default=5, help="most confident correct cases shown")
    parser.add_argument("--max_cases", type=int, default=None, help="misclassified cases shown (default all)")
    parser.add_argument("--cam_method", default="layercam", choices=["layercam", "gradcam"])
    parser.add_argument("--cam_layers", nargs="+", default=None, help="CAM target stages, fused (default: the last two stages)")
    args, overrides = parse_args_and_overrides(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = bundle_error_report(
        args.bundle, parse_config_files(args.config_file), overrides, predictions=args.predictions,
        report_dir=args.report_dir, threshold=args.threshold, n_correct=args.n_correct, max_cases=args.max_cases,
        cam_method=args.cam_method, cam_layers=args.cam_layers,
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
