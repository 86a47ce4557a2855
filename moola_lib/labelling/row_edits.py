"""Adding one row to a labels file, and removing it again, without touching any other row.

The labels file is the user's: its rows must come back exactly as they were, whatever their values look
like (``007``, ``NA``, ``12345678901234567890``, a byte-order mark, CRLF line ends, a parquet index).
So the text formats are never parsed and re-serialised: ``append`` splices the new row's bytes into the
file's bytes (CSV and JSON lines: one line at the end, in the file's line ending and column order; JSON
records: one object before the closing ``]``) and ``remove`` cuts exactly those bytes out again. Parquet
is rewritten through pyarrow's table (never pandas), so every other row keeps its values and types and
the schema keeps its metadata (the pandas index). Each function returns the new bytes plus a ``key``
that finds the row again for ``remove`` (its exact bytes, or for parquet its ``labelled_at`` value, which
is unique to the microsecond, matched as the column holds it: text, or a time). A CSV cell holding a line
break, a lone carriage return included, is quoted, so that the row reads back as one row.

A column the new row has and the file lacks is added: CSV extends its header (older rows simply have
fewer fields, read as empty), parquet adds a column of nulls, JSON objects may differ in keys anyway.
"""

from __future__ import annotations

import csv
import io
import json

BOM = b"\xef\xbb\xbf"


class RowEditError(ValueError):
    """The file's content does not let a row be added (not JSON records, a column of another type...)."""


def append(raw: bytes | None, row: dict, suffix: str) -> tuple[bytes, object]:
    """(new file bytes, key of the new row) for ``row`` added to a file holding ``raw`` (None: new file)."""
    if suffix == ".csv":
        return _csv_append(raw, row)
    if suffix == ".jsonl":
        return _line_append(raw, json.dumps(row).encode())
    if suffix == ".json":
        return _records_append(raw, json.dumps(row).encode())
    return _parquet_append(raw, row)


def remove(raw: bytes, key, suffix: str) -> bytes | None:
    """``raw`` without the row ``key`` names; None when that row is no longer in the file."""
    if suffix in (".csv", ".jsonl"):
        at = _line_at(raw, key)
        return None if at < 0 else raw[:at] + raw[at + len(key) :]
    if suffix == ".json":
        return _records_remove(raw, key)
    return _parquet_remove(raw, key)


# ------------------------------------------------------------------------------------------- text lines


def _newline(raw: bytes | None) -> bytes:
    return b"\r\n" if raw and b"\r\n" in raw else b"\n"


def _line_append(raw: bytes | None, line: bytes) -> tuple[bytes, bytes]:
    raw = raw or b""
    nl = _newline(raw)
    if raw and not raw.endswith((b"\n", b"\r")):
        raw += nl  # the last row had no line end: give it one, its content stays as it was
    return raw + line + nl, line + nl


def _line_at(raw: bytes, line: bytes) -> int:
    """Position of the last occurrence of ``line`` that starts a line of ``raw`` (-1: none)."""
    at = raw.rfind(line)
    while at > 0 and raw[at - 1 : at] not in (b"\n", b"\r"):
        at = raw.rfind(line, 0, at + len(line) - 1)
    return at


def _csv_append(raw: bytes | None, row: dict) -> tuple[bytes, bytes]:
    if not raw or not raw.strip():
        return _line_append(_csv_line(list(row)), _csv_line([_csv_cell(v) for v in row.values()]))
    bom = BOM if raw.startswith(BOM) else b""
    body = raw[len(bom) :]
    end = body.find(b"\n")
    header_line = body if end < 0 else body[: end + 1]
    header = next(csv.reader(io.StringIO(header_line.decode("utf-8"))))
    missing = [c for c in row if c not in header]
    if missing:  # extend the header; the rows already there keep their bytes
        line_end = header_line[len(header_line.rstrip(b"\r\n")) :]
        header_line = header_line.rstrip(b"\r\n") + b"," + _csv_line(missing).rstrip(b"\r\n") + line_end
        header += missing
    cells = [_csv_cell(row.get(c)) for c in header]
    new, key = _line_append(header_line + (b"" if end < 0 else body[end + 1 :]), _csv_line(cells).rstrip(b"\r\n"))
    return bom + new, key


def _csv_line(cells: list) -> bytes:
    # the writer quotes a cell holding a character of its line terminator: with "\r\n" that is a lone
    # "\r" too (a carriage return in a name), which a reader would otherwise take for the end of the row
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()[:-2].encode("utf-8") + b"\n"


def _csv_cell(value) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list) else str(value)


# ------------------------------------------------------------------------------------------- JSON records


def _records_append(raw: bytes | None, record: bytes) -> tuple[bytes, bytes]:
    if not raw or not raw.strip():
        return b"[\n" + record + b"\n]\n", record
    close = raw.rfind(b"]")
    if not raw.lstrip(BOM + b" \t\r\n").startswith(b"[") or close < 0 or raw[close + 1 :].strip():
        raise RowEditError(
            "a .json labels file must hold JSON records (a list of objects) to add rows to; "
            "convert it with pandas' to_json(orient='records') or use .jsonl"
        )
    before = raw[:close].rstrip()
    sep = b"" if before.endswith(b"[") else (b",\n" if b"\n" in raw else b", ")
    return before + sep + record + raw[len(before) :], record


def _records_remove(raw: bytes, record: bytes) -> bytes | None:
    at = raw.rfind(record)
    if at < 0:
        return None
    lo, hi = at, at + len(record)
    left = raw[:lo].rstrip()
    if left.endswith(b","):  # ", {ours}": take the comma before it
        return left[:-1] + raw[hi:]
    right = raw[hi:].lstrip()
    if right.startswith(b","):  # "[{ours}, {next}": take the comma after it
        return raw[:lo] + right[1:].lstrip()
    return raw[:lo] + raw[hi:]


# ------------------------------------------------------------------------------------------- parquet


def _parquet_append(raw: bytes | None, row: dict) -> tuple[bytes, object]:
    import pyarrow as pa

    if not raw:
        return _parquet_bytes(pa.Table.from_pylist([row])), row["labelled_at"]
    table = _parquet_table(raw)
    for name, value in row.items():  # a column the file lacks: nulls for the rows already there
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(len(table), pa.array([value]).type))
    cells = {f.name: _parquet_cell(f, row.get(f.name)) for f in table.schema}
    new = pa.Table.from_arrays(list(cells.values()), schema=table.schema)
    return _parquet_bytes(pa.concat_tables([table, new])), row["labelled_at"]


def _parquet_cell(field, value):
    """``value`` as a one-row array of the column ``field``: a time given as text goes into a column of
    times as a time (a file that stores ``labelled_at`` as timestamps, pandas' natural type)."""
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_timestamp(field.type) and isinstance(value, str):
        value = pd.Timestamp(value)
    try:
        return pa.array([value], type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
        raise RowEditError(
            f"column {field.name!r} holds {field.type} and cannot take the new row's value {value!r} ({e})"
        ) from None


def _parquet_remove(raw: bytes, labelled_at: str) -> bytes | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _parquet_table(raw)
    if "labelled_at" not in table.column_names:
        return None
    field = table.schema.field("labelled_at")
    try:  # the key as the column holds it (text, or a time), as _parquet_append put it there
        key = _parquet_cell(field, labelled_at)[0]
    except RowEditError:
        return None  # not a column this tool could have written its row into
    hits = pc.indices_nonzero(pc.fill_null(pc.equal(table["labelled_at"], key), False)).to_pylist()
    if not hits:
        return None
    keep = pc.not_equal(pa.array(range(len(table))), hits[-1])
    return _parquet_bytes(table.filter(keep))


def _parquet_table(raw: bytes):
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(raw))


def _parquet_bytes(table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()
