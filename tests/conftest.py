"""Test-wide settings: headless plotting, a bounded hypothesis profile, one torch thread where asked."""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import settings

settings.register_profile("moola", deadline=None, max_examples=50, derandomize=True)
settings.load_profile("moola")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny LSTMs run fastest on one torch thread, and on a shared 2-core machine two OpenMP threads are
    many times slower (modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# A user's own labels file, written by another tool, with values a parse-and-rewrite would change: text
# "NA" / "null" / "N/A", leading zeros, an integer beyond float precision, a quoted comma; its CSV has a
# byte-order mark and CRLF line ends, its parquet a window_id index and a timestamp column. Every column the
# labelling tool writes is there too (labelled_at included: rows the tool must still never undo).
FOREIGN_ROWS = [
    {
        "window_id": "007",
        "start": "2020-01-02T14:30:00+00:00",
        "end": "2020-01-02T16:14:00+00:00",
        "label": "retracement",
        "expansion_start": 20,
        "expansion_end": 40,
        "labelled_by": "bob",
        "labelled_at": "2020-01-03T00:00:00+00:00",
        "note": "NA",
        "code": "00123",
        "big": "12345678901234567890",
    },
    {
        "window_id": "0008",
        "start": "2020-01-03T14:30:00+00:00",
        "end": "2020-01-03T16:14:00+00:00",
        "label": "consolidation",
        "expansion_start": 5,
        "expansion_end": 60,
        "labelled_by": "eve",
        "labelled_at": "2020-01-04T00:00:00+00:00",
        "note": "null",
        "code": "N/A",
        "big": "a, b",
    },
]


class ForeignLabels:
    """The file's original content and the checks that a writer kept it exactly."""

    def __init__(self, path):
        import json

        import pandas as pd
        import pyarrow.parquet as pq

        self.path, self.suffix = path, path.suffix
        if self.suffix == ".csv":
            cells = [list(FOREIGN_ROWS[0])] + [list(r.values()) for r in FOREIGN_ROWS]
            lines = [",".join(f'"{c}"' if "," in str(c) else str(c) for c in row) for row in cells]
            path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
        elif self.suffix == ".jsonl":
            path.write_bytes(b"\r\n".join(json.dumps(_json_values(r)).encode() for r in FOREIGN_ROWS) + b"\r\n")
        elif self.suffix == ".json":
            path.write_text(json.dumps([_json_values(r) for r in FOREIGN_ROWS], indent=2) + "\n")
        else:
            frame = pd.DataFrame(FOREIGN_ROWS).set_index("window_id")
            frame["start"] = pd.to_datetime(frame["start"], utc=True)  # a column of times, not text
            frame.to_parquet(path)
            self.table = pq.read_table(path)
        self.raw = path.read_bytes()

    def assert_kept(self) -> None:
        """Every original row is still there, first, byte for byte (parquet: value for value, same types
        and schema metadata, so the window_id index survives)."""
        import pandas as pd
        import pyarrow.parquet as pq

        now = self.path.read_bytes()
        if self.suffix == ".parquet":
            table = pq.read_table(self.path)
            assert table.slice(0, len(FOREIGN_ROWS)).select(self.table.column_names).equals(self.table)
            assert table.schema.metadata == self.table.schema.metadata
            assert pd.read_parquet(self.path).index.name == "window_id"
        elif self.suffix == ".json":
            last = self.raw.rfind(b"}") + 1
            assert now[:last] == self.raw[:last]
        else:
            assert now.startswith(self.raw)

    def assert_unchanged(self) -> None:
        """The file is the original again (parquet: the same table)."""
        if self.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(self.path)
            assert table.equals(self.table) and table.schema.metadata == self.table.schema.metadata
        else:
            assert self.path.read_bytes() == self.raw


def _json_values(row: dict) -> dict:
    """JSON holds the big integer as a number and the "null" note as a real null."""
    return {
        **row,
        "big": int(row["big"]) if row["big"].isdigit() else row["big"],
        "note": None if row["note"] == "null" else row["note"],
    }


@pytest.fixture
def foreign_labels():
    """``foreign_labels(path)`` writes a user's own labels file in path's format (see FOREIGN_ROWS)."""
    return ForeignLabels
