#!/usr/bin/env python
"""Write the error-analysis report of a run's evaluation (a thin wrapper over
``medtl_monai.explain.bundle_error_report``).

    python scripts/error_report.py --bundle bundles/bimcv_truncated [--run NAME|PATH] [--threshold 0.5]
    python scripts/error_report.py --bundle bundles/bimcv_truncated --run 20261201-2130_xray_cut11 --report_dir /tmp/r

``--run`` chooses the run (a name under ``<bundle>/runs/`` or a run folder; ``--run_name`` is the same option);
default: the run whose model the bundle published (``models/model.pt``), else the latest run. The report reads that
run's model and model card (``<run>/models/``), its config (``<run>/config.json``: the datalist it was trained with)
and its evaluation (``<run>/eval/predictions.csv``, written by ``configs/evaluate.json`` run with ``--run_name``), and
writes into ``<run>/eval/report/`` (``--report_dir`` to choose; ``report.html``, self-contained, the PNGs and
``relabel.csv``). It refuses predictions whose ids are not cases of the datalist's ``--split`` (default ``test``).

``--config_file`` reads the bundle's configs instead of the run's (e.g. ``"['train.json','xray.json']"``); any other
``--key value`` pair overrides that config key, as with ``python -m monai.bundle run`` (e.g. ``--datalist my.json``
or ``--dataset_dir ...`` when the run was evaluated on another data set). There is no ``--output_dir``: the report
folder is ``--report_dir`` and the evaluation is the run's (``--run``) or ``--predictions``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from medtl_monai.bundle import parse_args_and_overrides, parse_config_files
from medtl_monai.explain import bundle_error_report
from medtl_monai.explain.report import PredictionsMismatchError


def main(argv: list[str] | None = None) -> int:
    """Parse the options, write the report, print its path; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="bundle folder (holding configs/ and runs/)")
    parser.add_argument("--run", "--run_name", dest="run", default=None,
                        help="run name (under <bundle>/runs/) or run folder (default: the published run, else the latest)")
    parser.add_argument("--config_file", default=None,
                        help="bundle configs to read instead of the run's config.json, e.g. \"['train.json','xray.json']\"")
    parser.add_argument("--predictions", default=None, help="predictions CSV (default <run>/eval/predictions.csv)")
    parser.add_argument("--report_dir", default=None, help="report folder (default <run>/eval/report)")
    parser.add_argument("--split", default="test", help="datalist split the predictions are of (default test)")
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold on p(class 1), two classes")
    parser.add_argument("--n_correct", type=int, default=5, help="most confident correct cases shown")
    parser.add_argument("--max_cases", type=int, default=None, help="misclassified cases shown (default all)")
    parser.add_argument("--cam_method", default="layercam", choices=["layercam", "gradcam"])
    parser.add_argument("--cam_layers", nargs="+", default=None, help="CAM target stages, fused (default: the last two stages)")
    args, overrides = parse_args_and_overrides(parser, argv)
    if "output_dir" in overrides:
        parser.error("--output_dir is not an option of the error report: use --report_dir for the report folder "
                     "(default <run>/eval/report); the evaluation read is the run's (--run) or --predictions.")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        path = bundle_error_report(
            args.bundle, parse_config_files(args.config_file) if args.config_file else None, overrides, run=args.run,
            predictions=args.predictions, report_dir=args.report_dir, split=args.split, threshold=args.threshold,
            n_correct=args.n_correct, max_cases=args.max_cases, cam_method=args.cam_method, cam_layers=args.cam_layers,
        )
    except (FileNotFoundError, PredictionsMismatchError) as err:  # no run, model, datalist or evaluation; wrong ids
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
