"""Serve ``pydicom._storage_sopclass_uids`` from ``pydicom.uid`` under pydicom 3.

MONAI Label 0.8.5 imports pydicom-seg 0.4.1 when its server starts (the DICOM SEG converter behind
``/infer``), and pydicom-seg imports ``SegmentationStorage`` from ``pydicom._storage_sopclass_uids``, a private
module that pydicom 3 removed; the same names are public in ``pydicom.uid``. This project pins pydicom 3, so
``scripts/setup_integration_env.sh label`` installs this file into the MONAI Label environment (never the base one)
as ``medtl_pydicom3_compat`` with a ``.pth`` line that registers the finder. The finder is appended to
``sys.meta_path``: where the real module exists (pydicom 2) it is found first, and pydicom is imported only when
the old name is asked for.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from types import ModuleType

OLD_NAME = "pydicom._storage_sopclass_uids"


class _UidAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname == OLD_NAME else None

    def create_module(self, spec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        import pydicom.uid

        module.__dict__.update({k: v for k, v in vars(pydicom.uid).items() if not k.startswith("_")})


def install() -> None:
    """Append the finder to ``sys.meta_path`` once."""
    if not any(isinstance(f, _UidAlias) for f in sys.meta_path):
        sys.meta_path.append(_UidAlias())


install()
