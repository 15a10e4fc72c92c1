#!/usr/bin/env python
"""Compare transfer strategies over three seeded splits through a bundle: the TruncatedTL paper's table.

Each strategy x split trains and evaluates the bundle in-process (``medtl_monai.bundle.run_workflow``): the checkpoint
(epoch) is chosen by validation AUROC, then the test split is evaluated once, on it; nothing is chosen on test data
(choose the cut beforehand with ``scripts/find_cut.py``, which reads the training split only). Each row is named by
its strategy and the registry's description of it (network, what is frozen, rates: ``lwft`` is this project's
truncated variant, ``lwft_full`` the paper's LWFT on the full network). The table reports the validation AUROC that
chose each checkpoint, test AUROC / AUPRC (mean ± std and the 95% t-interval over splits, with the number of splits
and of NaN runs), the mean test AUROC difference to a reference strategy (``--reference``, default ``full``) with its
95% t-interval over splits and the per-split DeLong p-values on the same test cases, parameters, MACs and CPU
latency, as Markdown, CSV and a PNG plot of AUROC against parameters. Finished runs are reused when the command is repeated with the same ``--study_dir``. Any other
``--key value`` pair overrides that key of the bundle's configs for every run, as with ``python -m monai.bundle run``.
``--tracking mlflow`` records every training as one MLflow run (``<strategy>_split<k>``) of one experiment named after
the study folder (``--experiment_name`` to choose it), in the bundle's ``mlruns.db`` (docs/tracking.md).

Example (the full-scale run of docs/benchmarks.md, 2D X-ray demo):
    python scripts/make_demo_data.py --output_dir /tmp/demo --n_cases 300 --modalities xray --formats nifti
    python scripts/compare_strategies.py \\
        --config_file "['bundles/bimcv_truncated/configs/train.json','bundles/bimcv_truncated/configs/xray.json']" \\
        --datalist /tmp/demo/datalist_xray.json --study_dir outputs/study \\
        --max_epochs 4 --image_size 64 --batch_size 16 --val_batch_size 32 --benchmarks docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from medtl_monai.bundle import (
    add_config_argument,
    parse_args_and_overrides,
    parse_config_files,
)
from medtl_monai.experiments.study import run_study
from medtl_monai.training import STRATEGIES
from medtl_monai.utils import machine_description, update_benchmark_section


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the study, print and write the table; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_argument(parser)
    parser.add_argument("--evaluate_file", default=None, help="default: evaluate.json beside the first config file")
    parser.add_argument("--datalist", required=True, help="datalist whose items are pooled and re-split by seed")
    parser.add_argument("--study_dir", default="outputs/study", help="folder of the study's runs and tables (default outputs/study)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES),
                        help="default: every strategy of the registry, in its order")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=5, help="timed batch-1 forward passes for the latency (the fastest is reported)")
    parser.add_argument("--benchmarks", default=None, help="also write the table into this Markdown file's compare_strategies section")
    parser.add_argument("--note", action="append", default=[], help="a line of text added to the benchmark section (repeatable)")
    parser.add_argument("--tracking", default=None,
                        help="mlflow: track each training as an MLflow run in the bundle's mlruns.db, as "
                             "`python -m monai.bundle run --tracking mlflow` does (needs pip install 'medtl-monai[tracking]')")
    parser.add_argument("--reference", default="full", choices=list(STRATEGIES),
                        help="strategy the others are compared with: AUROC difference (95%% t-interval over splits) and "
                             "DeLong p per split (default full; the first strategy when it is not run)")
    args, overrides = parse_args_and_overrides(parser, argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    files = parse_config_files(args.config_file)
    evaluate = args.evaluate_file or str(Path(files[0]).parent / "evaluate.json")
    start = time.perf_counter()
    result = run_study(files, evaluate, datalist=args.datalist, output_dir=args.study_dir, strategies=args.strategies,
                       seeds=args.seeds, overrides=overrides, repeats=args.repeats, tracking=args.tracking,
                       reference=args.reference, progress=lambda line: print(f"[{time.perf_counter() - start:7.0f} s] {line}", flush=True))
    print(result.markdown())
    print(f"wrote {args.study_dir}/study.md, study.csv, study_runs.csv, study.png")
    if args.tracking:
        print(f"tracked each training in MLflow experiment {result.settings['experiment_name']!r} of the bundle's "
              "mlruns.db (docs/tracking.md: mlflow ui --backend-store-uri sqlite:///<bundle>/mlruns.db)")
    if args.benchmarks:
        command = " ".join([
            "python scripts/compare_strategies.py", f"--config_file \"{args.config_file}\"", f"--datalist {args.datalist}",
            f"--study_dir {args.study_dir}", "--strategies", *args.strategies, "--seeds", *map(str, args.seeds),
            f"--reference {args.reference}",
            *[f"--{k} {v}" for k, v in overrides.items()], f"--repeats {args.repeats}",
        ])
        body = "\n".join([
            "## Transfer strategies (scripts/compare_strategies.py)",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {machine_description()}.",
            f"Data: `{args.datalist}`, pooled and re-split by patient for seeds {args.seeds}; overrides {overrides}.",
            *[text for line in args.note for text in ("", line)],
            "",
            result.markdown(),
            "",
            f"Files: `{args.study_dir}/study.md`, `study.csv`, `study_runs.csv` (one row per run), `study.png` (AUROC against parameters).",
        ])
        update_benchmark_section(args.benchmarks, "compare_strategies", body)
        print(f"updated the compare_strategies section of {args.benchmarks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
