"""Exceptions for unusable data cases: each names the offending file and says what is wrong with it."""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["BadCaseError", "DicomSeriesError", "SliceSpacingError", "find_bad_case_error"]


class BadCaseError(ValueError):
    """A data case that cannot be used for training or inference.

    The message always has the form ``"<path>: <problem>"`` so that a log line or a skip report is enough to find
    and fix the case.

    Args:
        path: the file or folder at fault (or the case identifier when there is no file).
        problem: a short, human-readable description of what is wrong.

    Attributes:
        path: the file or folder at fault, as a string.
        problem: the description of the problem.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        # keep the exception picklable (DataLoader workers, multiprocessing) despite the custom signature
        return (self.__class__, (self.path, self.problem))


class DicomSeriesError(BadCaseError):
    """A DICOM folder or file that does not form one well-defined volume (mixed, missing or inconsistent series)."""


class SliceSpacingError(DicomSeriesError):
    """The slices of a DICOM series are unevenly spaced (a missing slice or two stacks mixed in one series).

    Args:
        path: the series folder or multi-frame file.
        problem: the description of the problem.
        positions: the sorted slice positions along the slice normal, in mm.

    Attributes:
        positions: the sorted slice positions along the slice normal, in mm.
    """

    def __init__(self, path: str | os.PathLike, problem: str, positions: Sequence[float] = ()) -> None:
        super().__init__(path, problem)
        self.positions = tuple(float(p) for p in positions)

    def __reduce__(self):
        return (self.__class__, (self.path, self.problem, self.positions))


def find_bad_case_error(error: BaseException | None) -> BadCaseError | None:
    """Return the :class:`BadCaseError` behind ``error``, following ``__cause__``/``__context__`` links.

    MONAI's ``Compose`` and ``Dataset`` re-raise any transform failure as ``RuntimeError("applying transform ...")``
    chained to the original error; this finds the original one.

    Args:
        error: the exception that was caught.

    Returns:
        the first :class:`BadCaseError` in the chain, or None when there is none.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, BadCaseError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
