#!/usr/bin/env python
"""Export a run's trained network to ONNX: ``<run>/models/model.pt`` and its model card -> ``<run>/models/model.onnx``,
checked against PyTorch with ONNX Runtime (max abs difference <= 1e-4) when it is installed.

Usage:
    python scripts/export_onnx.py bundles/bimcv_truncated [--run NAME|PATH] [--onnx_path FILE] [--model_file FILE]
        [--config_file inference.json] [--batch 1] [--static_batch] [--KEY VALUE ...]

``--run`` chooses the run (a name under ``<bundle>/runs/`` or a run folder; ``--run_name`` is the same option);
default: the run whose model the bundle published (``models/model.pt``), else the latest run, else the bundle's own
``models/`` (a bundle with no runs). The ONNX file goes beside that run's ``model.pt``; ``--onnx_path`` writes it
elsewhere (relative to the current directory). The published ``<bundle>/models/`` gets no copy: pass
``--onnx_path <bundle>/models/model.onnx`` for an application that reads it there. The graph's input size is the one
the model was trained at (from its card). Extra ``--KEY VALUE`` pairs override config values as on the
``monai.bundle`` command line. Then run the bundle on ONNX Runtime, on the same run::

    python -m monai.bundle run --config_file "['B/configs/inference.json','B/configs/inference_onnx.json']" [--run_name NAME]
"""

from __future__ import annotations

import argparse
import logging
import sys

from medtl_monai.bundle import (
    add_config_argument,
    parse_args_and_overrides,
    parse_config_files,
)
from medtl_monai.export import export_bundle_onnx


def main(argv: list[str] | None = None) -> int:
    """Parse the options, export, print the path; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="bundle folder (holding configs/ and models/)")
    parser.add_argument("--run", "--run_name", dest="run", default=None,
                        help="run name (under <bundle>/runs/) or run folder (default: the published run, else the latest)")
    parser.add_argument("--onnx_path", default=None, help="ONNX file to write (default: model.onnx beside the run's model.pt)")
    parser.add_argument("--model_file", default=None, help="trained weights (default: the run's models/model.pt)")
    add_config_argument(parser, required=False, default="inference.json")
    parser.add_argument("--batch", type=int, default=1, help="batch size of the example input (default 1)")
    parser.add_argument("--static_batch", "--static-batch", action="store_true", help="fix the batch dimension (default: dynamic)")
    args, overrides = parse_args_and_overrides(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        path = export_bundle_onnx(args.bundle, output=args.onnx_path, config_file=parse_config_files(args.config_file),
                                  model_file=args.model_file, overrides=overrides, batch_size=args.batch,
                                  dynamic_batch=not args.static_batch, run=args.run)
    except FileNotFoundError as err:  # no such run, or no trained model in it
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
