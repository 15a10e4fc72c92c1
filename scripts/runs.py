#!/usr/bin/env python
"""The runs of a bundle (``<bundle>/runs/<run_name>/``): list them, show one, compare two, delete or publish one.

Usage:
    python scripts/runs.py list [--bundle bundles/bimcv_truncated] [--format markdown|csv]
    python scripts/runs.py show NAME          # the run's summary, provenance and best metrics
    python scripts/runs.py compare A B        # settings that differ, metrics side by side
    python scripts/runs.py delete NAME [--yes]
    python scripts/runs.py publish NAME       # its best model becomes the bundle's models/model.pt

NAME is a run name under ``<bundle>/runs/`` or a run folder. ``show`` and ``publish`` without NAME take the
published run, else the latest.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from medtl_monai.bundle import (
    compare_runs,
    delete_run,
    format_table,
    list_runs,
    publish_run,
    published_run,
    resolve_run,
    summarize_run,
)
from medtl_monai.data import MissingDataError

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "bimcv_truncated"
LIST_COLUMNS = ("name", "started", "arch", "cut", "strategy", "weights", "data", "best_val_auroc", "test_auroc",
                "published")


def _show(bundle: Path, name: str | None, fmt: str) -> str:
    run = resolve_run(bundle, name)
    summary = asdict(summarize_run(run))
    rows = [{"field": k, "value": v} for k, v in summary.items()]
    text = format_table(rows, fmt)
    for extra in ("provenance.json", "models/metrics.json", "metrics.json"):
        if (run / extra).is_file():
            text += f"\n{extra}:\n{(run / extra).read_text()}"
    return text


def _compare(bundle: Path, a: str, b: str, fmt: str) -> str:
    result = compare_runs(resolve_run(bundle, a), resolve_run(bundle, b))
    first, second = result["runs"]
    settings = [{"setting": k, first: json.dumps(v[0]), second: json.dumps(v[1])}
                for k, v in result["settings"].items()]
    metrics = [{"metric": k, first: v[0], second: v[1]} for k, v in result["metrics"].items()]
    return (format_table(settings, fmt, ["setting", first, second]) + "\n"
            + format_table(metrics, fmt, ["metric", first, second]))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command, print its table or result; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("list", "show", "compare", "delete", "publish"))
    parser.add_argument("runs", nargs="*", help="run names or folders (show/delete/publish: one; compare: two)")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help=f"bundle folder (default {DEFAULT_BUNDLE})")
    parser.add_argument("--format", choices=("markdown", "csv"), default="markdown", help="table format")
    parser.add_argument("--yes", action="store_true", help="delete without asking, even the published run")
    args = parser.parse_args(argv)
    wanted = {"list": (0, 0), "show": (0, 1), "compare": (2, 2), "delete": (1, 1), "publish": (0, 1)}[args.command]
    if not wanted[0] <= len(args.runs) <= wanted[1]:
        parser.error(f"{args.command} takes {wanted[0]}..{wanted[1]} run names, got {len(args.runs)}")
    name = args.runs[0] if args.runs else None
    try:
        if args.command == "list":
            print(format_table(list_runs(args.bundle), args.format, LIST_COLUMNS), end="")
        elif args.command == "show":
            print(_show(args.bundle, name, args.format), end="")
        elif args.command == "compare":
            print(_compare(args.bundle, args.runs[0], args.runs[1], args.format), end="")
        elif args.command == "publish":
            run = resolve_run(args.bundle, name)
            print(f"published {run.name}: {publish_run(run, args.bundle)}")
        else:
            run = resolve_run(args.bundle, name)
            is_published = published_run(args.bundle) == run.name
            if not args.yes:
                answer = input(f"delete {run}{' (the PUBLISHED run)' if is_published else ''}? [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    print("kept")
                    return 1
            delete_run(run, allow_published=True)
            print(f"deleted {run}")
    except (MissingDataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
