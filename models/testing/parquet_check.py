"""pyarrow's view of weir's Parquet records, for appliance/tests/sinks/parquet.rs.

    parquet_check.py compare RECORDS.csv PATH   PATH (a .parquet file or a dataset directory)
                                                holds exactly the CSV's records: same columns
                                                in the same order, typed, every value equal
                                                (CSV's empty field = null), each record once
    parquet_check.py readable DIR               every visible file of DIR opens, and so does
                                                the directory as one dataset

Each prints one JSON line (what it saw) and exits non-zero with the first difference.
"""

import json
import math
import os
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

KEY = ["src_ip", "src_port", "dst_ip", "dst_port", "protocol", "vlan_id", "tunnel_id",
       "bidirectional_first_seen_ms", "bidirectional_last_seen_ms", "bidirectional_packets",
       "bidirectional_bytes", "worker"]


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def visible_files(root):
    """Files a reader sees: pyarrow and Spark skip names starting with '.' or '_'."""
    files, hidden = [], []
    for d, _, names in os.walk(root):
        for n in names:
            (hidden if n.startswith((".", "_")) else files).append(os.path.join(d, n))
    return sorted(files), sorted(hidden)


def partition_of(ms):
    t = pd.Timestamp(int(ms), unit="ms", tz="UTC")
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}", t.hour


def load(path):
    if os.path.isdir(path):
        files, _ = visible_files(path)
        # Every row sits in the hour partition of its end time.
        for f in files:
            rel = os.path.relpath(f, path).split(os.sep)
            if len(rel) != 3 or not rel[0].startswith("date=") or not rel[1].startswith("hour="):
                fail(f"{f}: not under date=YYYY-MM-DD/hour=HH/")
            t = pq.read_table(f, columns=["bidirectional_last_seen_ms"])
            for ms in t.column(0).to_pylist():
                date, hour = partition_of(ms)
                if rel[0] != f"date={date}" or rel[1] != f"hour={hour:02d}":
                    fail(f"{f}: a record ending at {ms} ms belongs in date={date}/hour={hour:02d}")
        table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
        names = table.column_names
        if names[-2:] != ["date", "hour"]:
            fail(f"partition columns missing: {names[-3:]}")
        table = table.drop(["date", "hour"])
        return table, len(files)
    return pq.read_table(path), 1


def cell_equal(text, value, typ):
    if text == "":
        # CSV cannot tell an empty string (`service` of a flow of no service) from a missing
        # value; Parquet keeps them apart.
        return value is None or (pa.types.is_string(typ) and value == "")
    if value is None:
        return False
    if pa.types.is_string(typ):
        return text == value
    if pa.types.is_integer(typ):
        return int(text) == value
    if pa.types.is_floating(typ):
        # weir writes the shortest round-trip form: parsing gives the very same double.
        x = float(text)
        return x == value or (math.isnan(x) and math.isnan(value))
    fail(f"unexpected column type {typ}")


def compare(csv_path, path):
    csv = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    table, n_files = load(path)
    if table.column_names != list(csv.columns):
        fail(f"columns differ:\nparquet {table.column_names}\ncsv     {list(csv.columns)}")
    if table.num_rows != len(csv):
        fail(f"{table.num_rows} rows in parquet, {len(csv)} in the CSV")
    schema = table.schema
    # Typed, not text: the contract readers rely on.
    want = {"src_ip": pa.string(), "src_port": pa.int64(), "bidirectional_packets": pa.int64(),
            "bidirectional_first_seen_ms": pa.int64(), "expiration_id": pa.int64()}
    for name, typ in want.items():
        if schema.field(name).type != typ:
            fail(f"{name}: {schema.field(name).type}, want {typ}")
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    if "bidirectional_mean_ps" in csv.columns and "bidirectional_mean_ps" not in floats:
        fail("bidirectional_mean_ps is not a double")
    # The same multiset of rows: sort both on the key columns, then compare cell by cell.
    pq_rows = table.to_pylist()
    csv_rows = csv.to_dict("records")
    def pq_key(r):
        return tuple("" if r[k] is None else str(r[k]) for k in KEY)
    def csv_key(r):
        return tuple(r[k] for k in KEY)
    pq_rows.sort(key=pq_key)
    csv_rows.sort(key=csv_key)
    keys = [pq_key(r) for r in pq_rows]
    if len(set(keys)) != len(keys):
        fail("a record is in the parquet twice")
    nulls = 0
    for pr, cr in zip(pq_rows, csv_rows):
        if pq_key(pr) != csv_key(cr):
            fail(f"record {csv_key(cr)} of the CSV is not in the parquet (next there: {pq_key(pr)})")
        for f in schema:
            if not cell_equal(cr[f.name], pr[f.name], f.type):
                fail(f"{csv_key(cr)}: {f.name}: csv {cr[f.name]!r}, parquet {pr[f.name]!r}")
            nulls += pr[f.name] is None
    print(json.dumps({"rows": table.num_rows, "columns": table.num_columns, "files": n_files,
                      "nulls": nulls, "doubles": len(floats)}))


def readable(root):
    files, hidden = visible_files(root)
    rows = 0
    for f in files:
        if not f.endswith(".parquet"):
            fail(f"{f}: a visible file that is not .parquet")
        rows += pq.read_table(f).num_rows
    n = ds.dataset(root, format="parquet", partitioning="hive").to_table().num_rows
    if n != rows:
        fail(f"the dataset reads {n} rows, the files hold {rows}")
    print(json.dumps({"files": len(files), "hidden": len(hidden), "rows": rows,
                      "hidden_names": [os.path.basename(h) for h in hidden][:5]}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "readable":
        readable(sys.argv[2])
    else:
        fail(__doc__)
