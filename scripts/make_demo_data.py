#!/usr/bin/env python
"""Write the semi-synthetic chest CT / X-ray demo data set (NIfTI + DICOM, BIMCV layout, datalists), and beside it in
``<output_dir>/multilabel`` the small multi-label X-ray set (CheXpert layout: Opacity, Effusion, Cardiomegaly with
uncertain labels; ``datalist_multilabel.json``) that ``configs/multi_label.json`` trains on.

Example:
    python scripts/make_demo_data.py --output_dir data/demo
    python scripts/make_demo_data.py --output_dir /tmp/demo_small --n_cases 24 --formats nifti --overwrite
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from medtl_monai.synthetic import make_demo_dataset
from medtl_monai.synthetic.multilabel import make_multilabel_demo


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, write the data set, print a summary; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True,
                        help="output folder (must be empty or an earlier demo data set)")
    parser.add_argument("--n_cases", "--n-cases", type=int, default=300, help="number of sessions (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--formats", nargs="+", default=["nifti", "dicom"], choices=["nifti", "dicom"])
    parser.add_argument("--modalities", nargs="+", default=["ct", "xray"], choices=["ct", "xray"])
    parser.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU count)")
    parser.add_argument("--multilabel_images", "--multilabel-images", type=int, default=96,
                        help="radiographs of the multi-label set in <output_dir>/multilabel (default 96; 0: none)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing demo data set in --output_dir")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    summary = make_demo_dataset(args.output_dir, n_cases=args.n_cases, seed=args.seed, formats=args.formats,
                                modalities=args.modalities, workers=args.workers, overwrite=args.overwrite)
    print(f"wrote {summary['n_cases']} cases of {summary['n_patients']} patients ({summary['n_positive']} positive) "
          f"to {summary['root']} in {time.perf_counter() - start:.1f} s")
    for name, path in summary["datalists"].items():
        print(f"  {name}: {path}")
    if args.multilabel_images > 0:
        multi = make_multilabel_demo(Path(args.output_dir) / "multilabel", n_images=args.multilabel_images,
                                     seed=args.seed, overwrite=args.overwrite)
        counts = ", ".join(f"{name} {c['positive']}+/{c['uncertain']}?" for name, c in multi["counts"].items())
        print(f"wrote {multi['n_images']} multi-label radiographs of {multi['n_patients']} patients ({counts})")
        print(f"  datalist_multilabel: {multi['datalist']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
