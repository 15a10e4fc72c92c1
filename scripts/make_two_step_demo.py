#!/usr/bin/env python
"""Write the synthetic two-step transfer demo data: a fundus-like intermediate domain and an endoscopy-like target.

Example:
    python scripts/make_two_step_demo.py --output_dir bundles/two_step_swft/data/demo
    python scripts/make_two_step_demo.py --output_dir /tmp/two_step --n_intermediate 40 --n_target 30 --size 48
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from medtl_monai.synthetic import make_two_step_demo


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, write both domains, print where; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="output folder (gets intermediate/ and target/)")
    parser.add_argument("--n_intermediate", "--n-intermediate", type=int, default=200, help="fundus-like images (default 200)")
    parser.add_argument("--n_target", "--n-target", type=int, default=120, help="endoscopy-like images (default 120)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    paths = make_two_step_demo(args.output_dir, n_intermediate=args.n_intermediate, n_target=args.n_target,
                               size=args.size, seed=args.seed)
    print(f"wrote the two-step demo data to {args.output_dir} in {time.perf_counter() - start:.1f} s")
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
