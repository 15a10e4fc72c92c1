#!/usr/bin/env python
"""Export a bundle's trained network to ONNX: ``models/model.pt`` + the inference config's ``network_def`` ->
``models/model.onnx``, checked against PyTorch with ONNX Runtime (max abs difference <= 1e-4) when it is installed.

Usage:
    python scripts/export_onnx.py bundles/bimcv_truncated [--out models/model.onnx] [--ckpt models/model.pt]
        [--config_file configs/inference.json] [--batch 1] [--static-batch] [--KEY VALUE ...]

Extra ``--KEY VALUE`` pairs override config values as on the ``monai.bundle`` command line (values are parsed as
JSON when they can be), e.g. ``--image_size "[32,32,16]"`` for a bundle trained with that override: the ONNX graph
has the spatial size of the config. Relative paths are taken inside the bundle. Then run the bundle on ONNX Runtime::

    python -m monai.bundle run --config_file "['B/configs/inference.json','B/configs/inference_onnx.json']"
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from medtl_monai.export import export_bundle_onnx


def _overrides(extra: list[str]) -> dict:
    if len(extra) % 2 or any(not k.startswith("--") for k in extra[::2]):
        raise SystemExit(f"config overrides must be --key value pairs, got {extra}")
    values = {}
    for key, value in zip(extra[::2], extra[1::2], strict=True):
        try:
            values[key[2:]] = json.loads(value)
        except json.JSONDecodeError:
            values[key[2:]] = value
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="bundle folder (holding configs/ and models/)")
    parser.add_argument("--out", default="models/model.onnx", help="ONNX file to write (default: models/model.onnx)")
    parser.add_argument("--ckpt", default="models/model.pt", help="trained weights (default: models/model.pt)")
    parser.add_argument("--config_file", default="configs/inference.json", help="config holding network_def")
    parser.add_argument("--batch", type=int, default=1, help="batch size of the example input (default 1)")
    parser.add_argument("--static-batch", action="store_true", help="fix the batch dimension (default: dynamic)")
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = export_bundle_onnx(args.bundle, output=args.out, config_file=args.config_file, model_file=args.ckpt,
                              overrides=_overrides(extra), batch_size=args.batch, dynamic_batch=not args.static_batch)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
