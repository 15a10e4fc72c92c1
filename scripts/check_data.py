#!/usr/bin/env python
"""Check a datalist before training (a thin wrapper over ``medtl_monai.data.check_datalist``).

    python scripts/check_data.py --datalist data/demo/datalist.json [--output_dir data/demo/data_check]

Reads every image once and reports, per split, the class counts (error: a split without cases of a class), patients
in two splits (error), images with identical pixel data (warning, in pairs), and spacing, orientation, slice count,
modality and intensity summaries. Writes ``data_check.md``, ``data_check.png`` (intensity histograms per split),
``data_fingerprint.json`` and ``data_check.json`` into ``--output_dir`` (default: ``data_check/`` beside the
datalist). Exit status 1 when the check finds an error, 0 otherwise (warnings allowed). Training runs the same
check by itself (the bundles' ``check_data`` setting) and keeps its files beside the model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from medtl_monai.data import check_datalist


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the check, print the report; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datalist", required=True, help="the datalist JSON to check")
    parser.add_argument("--output_dir", "--output-dir", default=None,
                        help="folder for the report files (default: data_check/ beside the datalist)")
    parser.add_argument("--class_names", "--class-names", nargs="+", default=None,
                        help="classes in index order (default: the datalist's)")
    args = parser.parse_args(argv)

    datalist = Path(args.datalist)
    if not datalist.is_file():
        print(f"{datalist}: datalist does not exist", file=sys.stderr)
        return 1
    output_dir = Path(args.output_dir) if args.output_dir else datalist.parent / "data_check"
    report = check_datalist(datalist, class_names=args.class_names, output_dir=output_dir)
    print(report.to_markdown())
    print(f"report files in {output_dir} (checked in {report.seconds:.1f} s)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
