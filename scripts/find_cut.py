#!/usr/bin/env python
"""Find a TruncatedTL cut point for a bundle: linear probes on frozen, pooled features at every candidate cut.

Block-level cuts first (end of layer1 .. layer4), then layer-level cuts around the best block; the table goes to
<report_dir>/cut_search.md and .csv and the recommended cut is printed as the bundle option to pass (`--cut N`). One
forward pass of the full backbone per image serves every cut (hooks on each stage and block); the cost is printed.
`--method finetune` instead finetunes every candidate cut for `--epochs` epochs and scores its validation AUROC:
slower (one short training per cut), but it sees what finetuning adds, which the probe does not.

Any other `--key value` pair overrides that key of the bundle's configs, as with `python -m monai.bundle run`.

Example (2D X-ray demo, the bundle's own data and preprocessing):
    python scripts/find_cut.py \\
        --config_file "['bundles/bimcv_truncated/configs/train.json','bundles/bimcv_truncated/configs/xray.json']" \\
        --dataset_dir /tmp/demo --image_size 128 --weights /path/to/resnet50-0676ba61.pth --report_dir outputs/cut_search
    python scripts/find_cut.py --config_file "[...]" ... --method finetune --epochs 3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from medtl_monai.bundle import add_config_argument, parse_args_and_overrides, parse_config_files
from medtl_monai.experiments.cut_search import CUT_SEARCH_METHODS, run_cut_search


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the search, print the table and the recommended cut; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_argument(parser)
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per split")
    parser.add_argument("--batch_size", "--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--report_dir", default="outputs/cut_search", help="folder for cut_search.md / .csv")
    parser.add_argument("--method", choices=list(CUT_SEARCH_METHODS), default="probe",
                        help="probe: linear probe on frozen features, one forward pass per image (default); "
                             "finetune: a short finetune of every candidate cut (slower, sees what finetuning adds)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each short finetune (--method finetune)")
    args, overrides = parse_args_and_overrides(parser, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_cut_search(parse_config_files(args.config_file), overrides, limit=args.limit, batch_size=args.batch_size,
                            output_dir=args.report_dir, method=args.method, epochs=args.epochs)
    print(result.markdown())
    print(f"wrote {args.report_dir}/cut_search.md and cut_search.csv")
    print(f"--cut {result.recommended}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
