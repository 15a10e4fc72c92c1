"""Real data as the models see it: datalists (build, write, read), patient-level splits, datalist validation, the
data check before training and the data fingerprint, and the cases of a folder for inference. Reads images through :mod:`medtl_monai.io`; never imports the synthetic
data generators (:mod:`medtl_monai.synthetic`).
"""

from .builders import (
    bimcv_items,
    chexpert_items,
    chexpert_target,
    csv_items,
    encode_label,
    folder_items,
    infer_class_names,
    read_table,
)
from .cases import INPUT_KINDS, default_input_kinds, folder_cases
from .check import DataCheckError, DataCheckReport, check_before_training, check_datalist
from .datalist import SPLIT_KEYS, MissingDataError, load_split, read_class_names, write_datalist
from .fingerprint import build_fingerprint, case_flags, case_summary, load_fingerprint
from .loaders import loader_for_device
from .skipping import SkipBadCasesDataset, SkippingDataLoader, skip_bad_collate
from .splits import check_no_leakage, make_splits, patient_split
from .validate import validate_datalist

__all__ = [
    "INPUT_KINDS",
    "SPLIT_KEYS",
    "DataCheckError",
    "DataCheckReport",
    "MissingDataError",
    "SkipBadCasesDataset",
    "SkippingDataLoader",
    "bimcv_items",
    "build_fingerprint",
    "case_flags",
    "case_summary",
    "check_before_training",
    "check_datalist",
    "check_no_leakage",
    "chexpert_items",
    "chexpert_target",
    "csv_items",
    "default_input_kinds",
    "encode_label",
    "folder_cases",
    "folder_items",
    "infer_class_names",
    "load_fingerprint",
    "load_split",
    "loader_for_device",
    "make_splits",
    "patient_split",
    "read_class_names",
    "read_table",
    "skip_bad_collate",
    "validate_datalist",
    "write_datalist",
]
