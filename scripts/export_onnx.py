#!/usr/bin/env python
"""Export a bundle's trained network to ONNX: ``models/model.pt`` and its model card -> ``models/model.onnx``,
checked against PyTorch with ONNX Runtime (max abs difference <= 1e-4) when it is installed.

Usage:
    python scripts/export_onnx.py bundles/bimcv_truncated [--onnx_path models/model.onnx] [--model_file models/model.pt]
        [--config_file inference.json] [--batch 1] [--static_batch] [--KEY VALUE ...]

The graph's input size is the one the model was trained at (from its card). Extra ``--KEY VALUE`` pairs override
config values as on the ``monai.bundle`` command line (e.g. ``--ckpt_dir /path/to/models``). Relative paths are taken
inside the bundle. Then run the bundle on ONNX Runtime::

    python -m monai.bundle run --config_file "['B/configs/inference.json','B/configs/inference_onnx.json']"
"""

from __future__ import annotations

import argparse
import logging
import sys

from medtl_monai.bundle import add_config_argument, parse_args_and_overrides, parse_config_files
from medtl_monai.export import export_bundle_onnx


def main(argv: list[str] | None = None) -> int:
    """Parse the options, export, print the path; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="bundle folder (holding configs/ and models/)")
    parser.add_argument("--onnx_path", default="models/model.onnx", help="ONNX file to write (default: models/model.onnx)")
    parser.add_argument("--model_file", default=None, help="trained weights (default: model.pt in the config's ckpt_dir)")
    add_config_argument(parser, required=False, default="inference.json")
    parser.add_argument("--batch", type=int, default=1, help="batch size of the example input (default 1)")
    parser.add_argument("--static_batch", "--static-batch", action="store_true", help="fix the batch dimension (default: dynamic)")
    args, overrides = parse_args_and_overrides(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = export_bundle_onnx(args.bundle, output=args.onnx_path, config_file=parse_config_files(args.config_file),
                              model_file=args.model_file, overrides=overrides, batch_size=args.batch,
                              dynamic_batch=not args.static_batch)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
