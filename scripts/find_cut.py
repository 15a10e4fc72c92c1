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

The short finetunes are independent: `--workers N` runs N at a time in worker processes sharing the CPU cores,
`--devices cuda:0,cuda:1` one per GPU. Each fold's result is kept under <report_dir>/runs/, so a stopped search
resumes where it stopped. On a SLURM cluster, `--write_slurm PATH` trains nothing: it prepares the images once and
writes runs.txt (one `... --only <level>:<index>` command per short finetune of the next level) and a job-array
script PATH; after the block level's array, the same command writes the layer level's; after that, `--collect`
prints the table (docs/scaling.md).

Any other `--key value` pair overrides that key of the bundle's configs, as with `python -m monai.bundle run`.
`--tracking mlflow` records each candidate cut as an MLflow run (fold scores as steps) of one experiment named after
`--report_dir` (`--experiment_name` to choose it), in the bundle's `mlruns.db` (docs/tracking.md).

Example (2D X-ray demo, the bundle's own data and preprocessing):
    python scripts/find_cut.py \\
        --config_file "['bundles/bimcv_truncated/configs/train.json','bundles/bimcv_truncated/configs/xray.json']" \\
        --dataset_dir /tmp/demo --image_size 128 --weights /path/to/resnet50-0676ba61.pth --report_dir outputs/cut_search \\
        --folds 3 --epochs 3 --workers 2
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from medtl_monai.bundle import (
    add_config_argument,
    parse_args_and_overrides,
    parse_config_files,
)
from medtl_monai.experiments.cut_search import CUT_SEARCH_METHODS, PendingFolds, plan_cut_search, run_cut_search
from medtl_monai.experiments.parallel import strip_options, write_slurm_array


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
    parser.add_argument("--workers", type=int, default=1,
                        help="run this many short finetunes at a time in worker processes, each with cores/N threads")
    parser.add_argument("--devices", default=None, help="cuda:0,cuda:1: one short finetune at a time on each device")
    parser.add_argument("--only", default=None, metavar="LEVEL:INDEX",
                        help="run only that short finetune (a line of runs.txt), e.g. block:0; no table")
    parser.add_argument("--write_slurm", default=None, metavar="PATH",
                        help="train nothing: write runs.txt (the next level's short finetunes) beside PATH and a SLURM "
                             "job-array script PATH over it")
    parser.add_argument("--sbatch", action="append", default=None, metavar="OPTION",
                        help="an #SBATCH option of the --write_slurm script (repeatable; default --cpus-per-task=4 "
                             "--time=4:00:00)")
    parser.add_argument("--collect", action="store_true", help="train nothing: the table from the finished finetunes")
    argv = list(sys.argv[1:] if argv is None else argv)
    args, overrides = parse_args_and_overrides(parser, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    files = parse_config_files(args.config_file)
    common = {"method": args.method, "folds": args.folds, "epochs": args.epochs, "limit": args.limit,
              "batch_size": args.batch_size, "output_dir": args.report_dir}
    if args.write_slurm:
        return _write_slurm(args, argv, files, overrides, common)
    try:
        result = run_cut_search(files, overrides, tracking=args.tracking, workers=args.workers, devices=args.devices,
                                only=args.only, collect=args.collect, **common)
    except PendingFolds as pending:  # --only ran its finetune; the level (or the next one) has others to run
        print(f"--only {args.only} is done; {len(pending.runs)} short finetunes of the {pending.level} level are not")
        return 0
    print(result.markdown())
    print(f"wrote {args.report_dir}/cut_search.md and cut_search.json")
    print(f"--cut {result.recommended}")
    return 0


def _write_slurm(args: argparse.Namespace, argv: list[str], files: list[str], overrides: dict, common: dict) -> int:
    """``--write_slurm PATH``: the job array of the next level's short finetunes (one command each in runs.txt)."""
    common = {k: v for k, v in common.items() if k != "output_dir"}
    level, runs = plan_cut_search(files, overrides, output_dir=args.report_dir, **common)
    base = strip_options(argv, with_value=("--write_slurm", "--workers", "--devices", "--sbatch", "--only",
                                           "--tracking"), flags=("--collect",))
    if level is None:
        print(f"every short finetune of {args.report_dir} is done; print the table with --collect")
        return 0
    commands = [[sys.executable, str(Path(__file__).resolve()), *base, "--only", f"{level}:{run.index}"] for run in runs]
    script, listed = write_slurm_array(commands, args.write_slurm, job_name=f"find_cut_{level}",
                                       sbatch=args.sbatch or ("--cpus-per-task=4", "--time=4:00:00"))
    print(f"wrote {listed} ({len(runs)} short finetunes of the {level} level) and the job array {script}")
    print(f"submit: sbatch {script}")
    after = "write the layer level's array" if level == "block" else "print the table"
    print(f"when it has finished, run the same command again to {after}"
          + ("" if level == "block" else ": python scripts/find_cut.py " + shlex.join([*base, "--collect"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
