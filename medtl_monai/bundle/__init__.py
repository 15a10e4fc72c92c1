"""Bundles: the only room that opens a bundle. It finds a bundle's root, parses its configs (one loader, one
override syntax), keeps the model card beside a trained model, keeps each training in its own run folder (resolved
config, provenance, checkpoints; :mod:`~medtl_monai.bundle.runs`), and serves a trained model outside
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
from .config import config_paths, load_config, metadata_class_names, run_workflow, running_config
from .model import BundleModel
from .paths import bundle_dir_of, bundle_root, require_file
from .provenance import file_sha256, provenance_record, weights_kind, write_provenance
from .run_config import BOOKKEEPING_KEYS, config_hash, write_resolved_config
from .run_summary import RunSummary, compare_runs, format_table, list_runs, summarize_run
from .runs import (
    default_run_name,
    delete_run,
    new_run_name,
    publish_run,
    published_run,
    resolve_run,
    run_dir,
    run_names,
)
from .training_run import finish_run, running_config_hash, start_run, training_run_name

__all__ = [
    "BOOKKEEPING_KEYS",
    "CARD_NAME",
    "BundleModel",
    "ModelCard",
    "RunSummary",
    "add_config_argument",
    "bundle_dir_of",
    "bundle_root",
    "card_input_kinds",
    "card_network",
    "card_preprocessing",
    "compare_runs",
    "config_hash",
    "config_paths",
    "default_run_name",
    "delete_run",
    "file_sha256",
    "finish_run",
    "format_table",
    "list_runs",
    "load_config",
    "make_model_card",
    "metadata_class_names",
    "new_run_name",
    "parse_args_and_overrides",
    "parse_config_files",
    "parse_overrides",
    "provenance_record",
    "publish_run",
    "published_run",
    "read_model_card",
    "require_file",
    "resolve_run",
    "run_dir",
    "run_names",
    "run_workflow",
    "running_config",
    "running_config_hash",
    "start_run",
    "summarize_run",
    "training_run_name",
    "weights_kind",
    "write_provenance",
    "write_resolved_config",
]
