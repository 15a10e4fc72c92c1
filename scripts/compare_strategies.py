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
latency, as Markdown, CSV and a PNG plot of AUROC against parameters. Any other ``--key value`` pair overrides that
key of the bundle's configs for every run, as with ``python -m monai.bundle run``.

The runs are independent. ``--workers N`` trains N at a time in worker processes sharing the CPU cores;
``--devices cuda:0,cuda:1`` one per GPU. Finished runs are reused when the command is repeated with the same
``--study_dir`` (a half-finished study resumes; a run killed mid-training resumes from its checkpoint). For a cluster,
``--write_slurm study.sbatch`` trains nothing: it writes the splits, ``runs.txt`` (one command per unfinished run, each
``... --only INDEX``, which trains exactly that run into its folder) and a SLURM job-array script over it; after
``sbatch study.sbatch`` has finished, the same command with ``--collect`` builds the table from the run folders
(docs/scaling.md).
``--tracking mlflow`` records every training as one MLflow run (``<strategy>_split<k>``) of one experiment named after
the study folder (``--experiment_name`` to choose it), in the bundle's ``mlruns.db`` (docs/tracking.md).

Liftings and weight sources are compared like strategies: ``--liftings inflate slices acs`` and ``--weights W1 W2``
(docs/weights.md; ``none`` or ``random``: random initialisation) make every row a strategy x lifting x weights variant
(``truncated · acs · resnet50-proxy``), with its own run folders, cost and comparison. One value is an override of
every run, as before (``--weights FILE``). ``--reference`` names a row or a strategy; a strategy stands for its first
row (the first lifting and weights listed), so list ``inflate`` first to compare the other liftings with it
(docs/lifting.md, "Comparing liftings").

Example (the full-scale run of docs/benchmarks.md, 2D X-ray demo):
    python scripts/make_demo_data.py --output_dir /tmp/demo --n_cases 300 --modalities xray --formats nifti
    python scripts/compare_strategies.py \\
        --config_file "['bundles/bimcv_truncated/configs/train.json','bundles/bimcv_truncated/configs/xray.json']" \\
        --datalist /tmp/demo/datalist_xray.json --study_dir outputs/study \\
        --max_epochs 4 --image_size 64 --batch_size 16 --val_batch_size 32 --benchmarks docs/benchmarks.md
    # the same study, two runs at a time on this machine: add --workers 2; on a SLURM cluster:
    python scripts/compare_strategies.py ... --write_slurm outputs/study/study.sbatch && sbatch outputs/study/study.sbatch
    python scripts/compare_strategies.py ... --collect --benchmarks docs/benchmarks.md
    # liftings x weights on the CT demo (docs/lifting.md, "Comparing liftings"), into its own benchmark section:
    python scripts/compare_strategies.py --config_file bundles/bimcv_truncated/configs/train.json \\
        --datalist /tmp/demo/datalist.json --study_dir outputs/lifting_study --strategies truncated \\
        --liftings inflate slices acs --weights /tmp/proxy/resnet50-proxy.pth none --image_size "[64,64,32]" \\
        --crop lung --slice_stride 2 --max_epochs 3 --benchmarks docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from medtl_monai.bundle import (
    add_config_argument,
    parse_args_and_overrides,
    parse_config_files,
)
from medtl_monai.experiments.parallel import parse_devices, strip_options, write_slurm_array
from medtl_monai.experiments.study import collect_study, plan_study, run_planned, run_study, study_split_files
from medtl_monai.experiments.study_variants import study_variants
from medtl_monai.networks import LIFTINGS
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
    parser.add_argument("--benchmarks", default=None,
                        help="also write the table into a section of this Markdown file (see --section)")
    parser.add_argument("--section", default=None,
                        help="that section's name (default compare_strategies; compare_liftings when --liftings or "
                             "--weights take several values, so that a lifting study does not replace the strategies)")
    parser.add_argument("--note", action="append", default=[], help="a line of text added to the benchmark section (repeatable)")
    parser.add_argument("--tracking", default=None,
                        help="mlflow: track each training as an MLflow run in the bundle's mlruns.db, as "
                             "`python -m monai.bundle run --tracking mlflow` does (needs pip install 'medtl-monai[tracking]')")
    parser.add_argument("--liftings", nargs="+", default=None, choices=list(LIFTINGS),
                        help="compare these liftings of 2D weights to volumes (docs/lifting.md); one value: a lifting "
                             "override of every run")
    parser.add_argument("--weights", nargs="+", default=None, metavar="WEIGHTS",
                        help="compare these weights settings (docs/weights.md; none or random: random initialisation); "
                             "one value: a weights override of every run")
    parser.add_argument("--reference", default="full",
                        help="row the others are compared with: AUROC difference (95%% t-interval over splits) "
                             "and DeLong p per split; a strategy (its first row: the first of --liftings and "
                             "--weights) or a row's name such as 'truncated · acs' (default full; the first row when "
                             "it is not run)")
    parser.add_argument("--workers", type=int, default=1,
                        help="train this many runs at a time in worker processes, each with cores/N torch threads (default 1)")
    parser.add_argument("--devices", default=None,
                        help="cuda:0,cuda:1: train one run at a time on each device (instead of --workers)")
    parser.add_argument("--only", type=int, default=None, metavar="INDEX",
                        help="train only run INDEX of the study's run list (a line of runs.txt) into its folder; no table")
    parser.add_argument("--write_slurm", default=None, metavar="PATH",
                        help="train nothing: write the splits, runs.txt (one command per unfinished run) beside PATH and "
                             "a SLURM job-array script PATH over it")
    parser.add_argument("--sbatch", action="append", default=None, metavar="OPTION",
                        help="an #SBATCH option of the --write_slurm script (repeatable; e.g. --sbatch=--gres=gpu:1); "
                             "default --cpus-per-task=4 --time=24:00:00")
    parser.add_argument("--collect", action="store_true",
                        help="train nothing: build the table from the finished run folders (after a job array)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args, overrides = parse_args_and_overrides(parser, argv)
    try:
        variants = study_variants(args.strategies, args.liftings, args.weights)
    except ValueError as err:
        parser.error(str(err))
    if args.reference not in {*args.strategies, *STRATEGIES, *(v.label for v in variants)}:
        parser.error(f"--reference {args.reference!r} is neither a strategy nor a row of this study "
                     f"({', '.join(repr(v.label) for v in variants)}).")
    variant_options = {"liftings": args.liftings, "weights": args.weights}
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    files = parse_config_files(args.config_file)
    evaluate = args.evaluate_file or str(Path(files[0]).parent / "evaluate.json")
    start = time.perf_counter()
    devices = parse_devices(args.devices)
    if args.only is not None:
        return _train_one(args, files, evaluate, overrides, devices)
    if args.write_slurm:
        return _write_slurm(args, argv)
    if args.collect:
        result = collect_study(files, output_dir=args.study_dir, strategies=args.strategies, seeds=args.seeds,
                               overrides=overrides, repeats=args.repeats, reference=args.reference, **variant_options)
    else:
        result = run_study(files, evaluate, datalist=args.datalist, output_dir=args.study_dir, strategies=args.strategies,
                           seeds=args.seeds, overrides=overrides, repeats=args.repeats, tracking=args.tracking,
                           reference=args.reference, workers=args.workers, devices=devices, **variant_options,
                           progress=lambda line: print(f"[{time.perf_counter() - start:7.0f} s] {line}", flush=True))
    print(result.markdown())
    print(f"wrote {args.study_dir}/study.md, study.csv, study_runs.csv, study.png")
    if args.tracking and not args.collect:
        print(f"tracked each training in MLflow experiment {result.settings['experiment_name']!r} of the bundle's "
              "mlruns.db (docs/tracking.md: mlflow ui --backend-store-uri sqlite:///<bundle>/mlruns.db)")
    if args.benchmarks:
        varied = bool(variants[0].varied)
        section = args.section or ("compare_liftings" if varied else "compare_strategies")
        command = " ".join([
            "python scripts/compare_strategies.py", f"--config_file \"{args.config_file}\"", f"--datalist {args.datalist}",
            f"--study_dir {args.study_dir}", "--strategies", *args.strategies,
            *(["--liftings", *args.liftings] if args.liftings else []),
            *(["--weights", *args.weights] if args.weights else []), "--seeds", *map(str, args.seeds),
            f"--reference {shlex.quote(args.reference)}",
            *[f"--{k} {v}" for k, v in overrides.items()], f"--repeats {args.repeats}",
        ])
        body = "\n".join([
            ("## Liftings and weight sources (scripts/compare_strategies.py)" if varied
             else "## Transfer strategies (scripts/compare_strategies.py)"),
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {machine_description()}.",
            (f"Data: `{args.datalist}`, pooled and re-split by patient for seeds {args.seeds}; overrides "
             f"{_shown_overrides(overrides, args)}."),
            *[text for line in args.note for text in ("", line)],
            "",
            result.markdown(),
            "",
            f"Files: `{args.study_dir}/study.md`, `study.csv`, `study_runs.csv` (one row per run), `study.png` (AUROC against parameters).",
        ])
        update_benchmark_section(args.benchmarks, section, body)
        print(f"updated the {section} section of {args.benchmarks}")
    return 0


def _shown_overrides(overrides: dict, args: argparse.Namespace) -> dict:
    """The overrides every run got: the command's ``--key value`` pairs and a ``--liftings`` / ``--weights`` given
    with one value (several values are the rows, not overrides)."""
    shown = dict(overrides)
    for key, values in (("lifting", args.liftings), ("weights", args.weights)):
        if values and len(values) == 1:
            shown[key] = values[0]
    return shown


def _train_one(args: argparse.Namespace, files: list[str], evaluate: str, overrides: dict, devices: list[str]) -> int:
    """``--only INDEX``: train and evaluate one run of the study into its folder (nothing when it is finished)."""
    plan = plan_study(args.study_dir, args.strategies, args.seeds,
                      study_split_files(args.datalist, args.study_dir, args.seeds, reuse=True),
                      liftings=args.liftings, weights=args.weights)
    if not 0 <= args.only < len(plan):
        print(f"--only {args.only}: the study has runs 0..{len(plan) - 1}", file=sys.stderr)
        return 2
    run = plan[args.only]
    experiment = None
    if args.tracking:
        experiment = str(overrides.get("experiment_name") or Path(args.study_dir).resolve().name)
    was_finished = run.finished
    result = run_planned(files, evaluate, run, overrides, tracking=args.tracking, experiment_name=experiment,
                         device=devices[0] if devices else None)
    state = "was already finished" if was_finished else f"trained in {result.train_s:.0f} s"
    print(f"run {run.index} ({run.name} split {run.split}, {run.run_dir}) {state}: test AUROC {result.auroc:.3f}, "
          f"AUPRC {result.auprc:.3f}")
    return 0


def _write_slurm(args: argparse.Namespace, argv: list[str]) -> int:
    """``--write_slurm PATH``: the splits, one command per unfinished run in runs.txt, and the job-array script."""
    plan = plan_study(args.study_dir, args.strategies, args.seeds,
                      study_split_files(args.datalist, args.study_dir, args.seeds),
                      liftings=args.liftings, weights=args.weights)
    base = strip_options(argv, with_value=("--write_slurm", "--workers", "--devices", "--benchmarks", "--section",
                                           "--note", "--sbatch", "--only"), flags=("--collect",))
    pending = [run for run in plan if not run.finished]
    if not pending:
        print(f"every run of {args.study_dir} is finished; build the table with --collect")
        return 0
    commands = [[sys.executable, str(Path(__file__).resolve()), *base, "--only", str(run.index)] for run in pending]
    script, runs = write_slurm_array(commands, args.write_slurm, job_name="compare_strategies",
                                     sbatch=args.sbatch or ("--cpus-per-task=4", "--time=24:00:00"))
    print(f"wrote {runs} ({len(pending)} runs of {len(plan)}; the others are finished) and the job array {script}")
    print(f"submit: sbatch {script}")
    print("then build the table: python scripts/compare_strategies.py " + shlex.join([*base, "--collect"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
