"""The classifier's expected errors (``util.errors.ExpectedError``: the command line prints them as one line
``error: ...`` and exits 2)."""

from __future__ import annotations

from ..util.errors import ExpectedError


class ClassifierError(ExpectedError, ValueError):
    """A classifier that cannot be fitted or used as asked: an unknown arm, ``auto`` without a transfer run,
    an arm that reads an encoder without one, labels of one class, windows of another shape or with other
    feature options than the model's."""


class ClassifierFileError(ClassifierError):
    """A saved classifier that cannot be read: missing, truncated, altered (its weights' SHA-256 differs from
    the one its model.json records), not a moola classifier, or written by a newer moola."""
