"""Real data as the models see it: datalists (build, write, read), patient-level splits, datalist validation, and
the cases of a folder for inference. Reads images through :mod:`medtl_monai.io`; never imports the synthetic
data generators (:mod:`medtl_monai.synthetic`).
"""

from .builders import bimcv_items, csv_items, encode_label, infer_class_names, read_table
from .cases import INPUT_KINDS, default_input_kinds, folder_cases
from .datalist import SPLIT_KEYS, MissingDataError, load_split, read_class_names, write_datalist
from .splits import check_no_leakage, make_splits, patient_split
from .validate import validate_datalist

__all__ = [
    "INPUT_KINDS",
    "SPLIT_KEYS",
    "MissingDataError",
    "bimcv_items",
    "check_no_leakage",
    "csv_items",
    "default_input_kinds",
    "encode_label",
    "folder_cases",
    "infer_class_names",
    "load_split",
    "make_splits",
    "patient_split",
    "read_class_names",
    "read_table",
    "validate_datalist",
    "write_datalist",
]
