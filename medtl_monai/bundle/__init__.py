"""Bundles: the only room that opens a bundle. It finds a bundle's root, parses its configs (one loader, one
override syntax), keeps the model card beside a trained model, and serves a trained model outside
``monai.bundle run`` (:class:`BundleModel`, used by the error report, the export, MONAI Deploy and MONAI Label).
"""

from .card import (
    CARD_NAME,
    ModelCard,
    card_input_kinds,
    card_network,
    card_preprocessing,
    make_model_card,
    read_model_card,
)
from .cli import add_config_argument, parse_args_and_overrides, parse_config_files, parse_overrides
from .config import config_paths, load_config, metadata_class_names, run_workflow
from .model import BundleModel
from .paths import bundle_dir_of, bundle_root, require_file

__all__ = [
    "CARD_NAME",
    "BundleModel",
    "ModelCard",
    "add_config_argument",
    "bundle_dir_of",
    "bundle_root",
    "card_input_kinds",
    "card_network",
    "card_preprocessing",
    "config_paths",
    "load_config",
    "make_model_card",
    "metadata_class_names",
    "parse_args_and_overrides",
    "parse_config_files",
    "parse_overrides",
    "read_model_card",
    "require_file",
    "run_workflow",
]
