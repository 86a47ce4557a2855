"""``DataValidationError``: the one error of invalid bar and label data (a file, or a DataFrame in memory).

Every module of ``moola_lib.bars`` that checks data raises it (``ohlcv`` re-exports it, where callers import it
from); the command lines print it as one line and exit 2 (``util.errors.ExpectedError``).
"""

from __future__ import annotations

from ..util.errors import ExpectedError


class DataValidationError(ExpectedError, ValueError):
    """Invalid data: ``source`` (file or "<DataFrame>"), the ``check`` that failed, a ``detail`` text and,
    for row checks, ``n_rows`` failing. The message reads "<source>: check '<check>' failed: <detail>"."""

    def __init__(self, source: str, check: str, detail: str, n_rows: int | None = None):
        super().__init__(f"{source}: check '{check}' failed: {detail}")
        self.source, self.check, self.detail, self.n_rows = source, check, detail, n_rows

    def __reduce__(self):  # picklable (e.g. across worker processes) despite the multi-argument __init__
        return type(self), (self.source, self.check, self.detail, self.n_rows)
