#!/usr/bin/env python
"""Write MONAI datalists with patient-level, stratified, seeded splits.

Examples:
    # BIMCV-like BIDS tree, CT, three splits -> data/datalist_split0.json ... split2.json
    python scripts/make_datalist.py --layout bimcv --root data/demo --labels data/demo/labels.csv \\
        --modality ct --datalist data/datalist.json --splits 3
    # a folder of DICOM studies labelled by a CSV id,label[,patient_id]
    python scripts/make_datalist.py --layout csv --root data/demo/dicom --labels data/demo/labels.csv \\
        --pattern "{id}/CT" --datalist data/datalist_dicom.json
    # one sub-folder per class (root/<class>/*.png), patient id from the file name (person12_virus_3 -> person12)
    python scripts/make_datalist.py --layout folders --root data/chest_xray --modality xray \\
        --patient_regex "(person\\d+)_" --datalist data/datalist_xray.json
    # a CheXpert-style table (Path, one column per observation: 1 / 0 / -1 uncertain / blank = 0), multi-label;
    # the patient id is the "patientNNNNN" part of the path
    python scripts/make_datalist.py --chexpert_csv data/CheXpert-v1.0-small/train.csv --root data \\
        --classes Atelectasis Cardiomegaly Consolidation Edema "Pleural Effusion" --datalist data/datalist_chexpert.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from medtl_monai.data import bimcv_items, csv_items, folder_items, make_splits, patient_split, write_datalist
from medtl_monai.data.builders import chexpert_items


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, list the items, split them and write the datalist(s); return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", default=None, choices=["bimcv", "csv", "folders", "chexpert"],
                        help="bimcv: BIDS tree + labels; csv: folder of cases + labels; folders: root/<class>/<images>; "
                             "chexpert: a CheXpert-style table (--chexpert_csv)")
    parser.add_argument("--chexpert_csv", "--chexpert-csv", default=None,
                        help="a CheXpert-style table (Path, one column per observation with 1, 0, -1 = uncertain, blank "
                             "= 0): writes a multi-label X-ray datalist (implies --layout chexpert)")
    parser.add_argument("--classes", nargs="+", default=None,
                        help="chexpert: the observation columns, in class order (default: every column but Path, "
                             "the patient column, Sex, Age, Frontal/Lateral, AP/PA)")
    parser.add_argument("--path_column", "--path-column", default="Path", help="chexpert: the column of image paths")
    parser.add_argument("--patient_column", "--patient-column", default=None,
                        help="chexpert: the column of patient ids (default: from the path, see --patient_regex)")
    parser.add_argument("--root", required=True,
                        help="data set root (BIDS tree, folder of cases, of class folders, or that CheXpert paths "
                             "are relative to)")
    parser.add_argument("--labels", default=None, help="labels table (CSV or TSV); bimcv and csv layouts")
    parser.add_argument(
        "--datalist", required=True, help="datalist JSON to write; with --splits K > 1, <stem>_split<k>.json beside it"
    )
    parser.add_argument("--modality", default="ct", choices=["ct", "xray"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the (first) split")
    parser.add_argument("--splits", type=int, default=1, help="number of seeded splits (seed, seed+1, ...)")
    parser.add_argument("--fractions", type=float, nargs=3, default=[0.7, 0.1, 0.2], metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--class_names", "--class-names", nargs="+", default=None, help="classes in index order (default: sorted)")
    parser.add_argument("--label_column", "--label-column", default="label")
    parser.add_argument("--multi_label", "--multi-label", action="store_true", help="labels hold several names (a|b or a list)")
    parser.add_argument("--pattern", default="{id}", help="csv layout: case path under --root, e.g. '{id}/CT'")
    parser.add_argument("--views", nargs="+", default=None, help="bimcv X-ray: keep these views, e.g. pa ap")
    parser.add_argument("--skip_missing", "--skip-missing", action="store_true", help="skip label rows without an image")
    parser.add_argument("--patient_regex", "--patient-regex", default=None,
                        help="folders layout: regex whose first group, searched in the image path relative to --root, "
                             "is the patient id (default: the file stem); chexpert: in the Path column (default "
                             "'(patient\\d+)')")
    args = parser.parse_args(argv)
    if args.chexpert_csv is not None:
        if args.layout not in (None, "chexpert"):
            parser.error(f"--chexpert_csv goes with --layout chexpert, not {args.layout}")
        args.layout, args.labels, args.modality, args.multi_label = "chexpert", args.chexpert_csv, "xray", True
    if args.layout is None:
        parser.error("give --layout (bimcv, csv, folders, chexpert) or --chexpert_csv")
    if args.layout != "folders" and args.labels is None:
        parser.error(f"--labels is required with --layout {args.layout}")

    on_missing = "skip" if args.skip_missing else "error"
    if args.layout == "bimcv":
        items, class_names = bimcv_items(args.root, args.labels, modality=args.modality, class_names=args.class_names,
                                         label_column=args.label_column, multi_label=args.multi_label,
                                         views=args.views, on_missing=on_missing)
    elif args.layout == "chexpert":
        args.modality, args.multi_label = "xray", True
        items, class_names = chexpert_items(args.root, args.labels, classes=args.classes, path_column=args.path_column,
                                            patient_column=args.patient_column,
                                            patient_regex=args.patient_regex or r"(patient\d+)", on_missing=on_missing)
    elif args.layout == "folders":
        items, class_names = folder_items(args.root, modality=args.modality, class_names=args.class_names,
                                          patient_regex=args.patient_regex)
    else:
        items, class_names = csv_items(args.root, args.labels, pattern=args.pattern, label_column=args.label_column,
                                       class_names=args.class_names, multi_label=args.multi_label,
                                       on_missing=on_missing)
    if not items:
        print(f"no labelled {args.modality} images found under {args.root}", file=sys.stderr)
        return 1
    datalist = Path(args.datalist)
    meta = {"modality": "CT" if args.modality == "ct" else "CR", "multi_label": args.multi_label}
    if args.splits == 1:
        split = patient_split(items, fractions=args.fractions, seed=args.seed)
        write_datalist(datalist, split, class_names=class_names, extra={"split_seed": args.seed,
                                                                  "split_fractions": args.fractions}, **meta)
        written = [datalist]
    else:
        seeds = list(range(args.seed, args.seed + args.splits))
        make_splits(items, seeds=seeds, fractions=args.fractions, output_dir=datalist.parent, class_names=class_names,
                    prefix=f"{datalist.stem}_split", **meta)
        written = [datalist.parent / f"{datalist.stem}_split{k}.json" for k in range(args.splits)]
    print(f"{len(items)} items, classes {class_names}")
    for path in written:
        print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
