#!/usr/bin/env python
"""Find a TruncatedTL cut point for a bundle: every candidate cut scored on folds of the TRAINING split.

Block-level cuts first (end of layer1 .. layer4), then layer-level cuts around the best block. Each candidate is
the network the bundle trains (its weights, inflation, init_from, strategy and preprocessing, with `cut` set to the
candidate), finetuned for `--epochs` epochs on K-1 of `--folds` patient-grouped folds of the bundle's training split
and scored on the remaining fold; the validation and test splits are never read. The table gives each cut's mean
AUROC, standard error, n, parameters, MACs and wall time; the recommendation is the smallest cut within one standard
error of the best mean (the one-standard-error rule). It goes to <report_dir>/cut_search.md and .json, and the last
line printed is the bundle option to pass (`--cut N`). `--method probe` scores linear probes on frozen pooled
features instead (seconds, one forward pass per image for every cut; blind to what finetuning adds).

Any other `--key value` pair overrides that key of the bundle's configs, as with `python -m monai.bundle run`.
`--tracking mlflow` records each candidate cut as an MLflow run (fold scores as steps) of one experiment named after
`--report_dir` (`--experiment_name` to choose it), in the bundle's `mlruns.db` (docs/tracking.md).

Example (2D X-ray demo, the bundle's own data and preprocessing):
    python scripts/find_cut.py \\
        --config_file "['bundles/bimcv_truncated/configs/train.json','bundles/bimcv_truncated/configs/xray.json']" \\
        --dataset_dir /tmp/demo --image_size 128 --weights /path/to/resnet50-0676ba61.pth --report_dir outputs/cut_search \\
        --folds 3 --epochs 3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from medtl_monai.bundle import (
    add_config_argument,
    parse_args_and_overrides,
    parse_config_files,
)
from medtl_monai.experiments.cut_search import CUT_SEARCH_METHODS, run_cut_search


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the search, print the table and the recommended cut; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_argument(parser)
    parser.add_argument("--limit", type=int, default=None, help="at most this many training images")
    parser.add_argument("--batch_size", "--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--report_dir", default="outputs/cut_search", help="folder for cut_search.md / .json")
    parser.add_argument("--method", choices=list(CUT_SEARCH_METHODS), default="finetune",
                        help="finetune: a short finetune of every candidate cut on every fold (default); "
                             "probe: linear probes on frozen features, one forward pass per image (fast, cruder)")
    parser.add_argument("--folds", type=int, default=3,
                        help="K: patient-grouped folds of the training split each cut is scored on (default 3)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each short finetune (--method finetune)")
    parser.add_argument("--tracking", choices=["mlflow"], default=None,
                        help="mlflow: record each candidate cut as an MLflow run in the bundle's mlruns.db "
                             "(needs pip install 'medtl-monai[tracking]')")
    args, overrides = parse_args_and_overrides(parser, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_cut_search(parse_config_files(args.config_file), overrides, method=args.method, folds=args.folds,
                            epochs=args.epochs, limit=args.limit, batch_size=args.batch_size, output_dir=args.report_dir,
                            tracking=args.tracking)
    print(result.markdown())
    print(f"wrote {args.report_dir}/cut_search.md and cut_search.json")
    print(f"--cut {result.recommended}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
