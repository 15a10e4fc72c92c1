"""``python deploy -i DICOM_FOLDER -o OUTPUT_FOLDER -m BUNDLE_FOLDER``: run the classification application."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from app import main  # noqa: E402

if __name__ == "__main__":
    main()
