"""Glue that bundle configs call by ``_target_`` / ``$`` expressions: where the bundle is, which data to read,
and how to place (and initialise) the network. Logic lives here so that tests can reach it; configs only wire."""

from .data import MissingDataError, class_names, folder_cases, load_split, require_file
from .network import initialize_from_checkpoint, prepare_network
from .paths import find_bundle_root

__all__ = [
    "MissingDataError",
    "class_names",
    "load_split",
    "folder_cases",
    "require_file",
    "initialize_from_checkpoint",
    "prepare_network",
    "find_bundle_root",
]
