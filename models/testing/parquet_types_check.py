#!/usr/bin/env python3
"""Check that pandas and Spark read weir's Parquet counters as 64-bit signed integers, with no
cast: `parquet_types_check.py RECORDS.csv DATASET_DIR`. The CSV is the same capture's records
(the sums must match). Prints one JSON line; exits 1 on any failure."""
import json
import sys

import pandas as pd

COUNTERS = ["src_port", "dst_port", "protocol", "ip_version", "vlan_id", "tunnel_id", "worker"] + [
    f"{d}_{f}" for d in ("bidirectional", "src2dst", "dst2src")
    for f in ("first_seen_ms", "last_seen_ms", "duration_ms", "packets", "bytes")]


def fail(msg):
    print(json.dumps({"error": msg}))
    sys.exit(1)


def main():
    csv_path, dataset = sys.argv[1], sys.argv[2]
    csv = pd.read_csv(csv_path)
    want_bytes = int(csv["bidirectional_bytes"].sum())
    want_span = int(csv["bidirectional_last_seen_ms"].max() - csv["bidirectional_first_seen_ms"].min())

    # pandas (through pyarrow): int64 columns, sums and differences without a cast.
    df = pd.read_parquet(dataset)
    for c in COUNTERS:
        if str(df[c].dtype) != "int64":
            fail(f"pandas reads {c} as {df[c].dtype}, want int64")
    if int(df["bidirectional_bytes"].sum()) != want_bytes:
        fail("pandas: bidirectional_bytes sum differs from the CSV")
    if df["bidirectional_last_seen_ms"].max() - df["bidirectional_first_seen_ms"].min() != want_span:
        fail("pandas: time span differs from the CSV")

    # Spark: bigint (LongType) columns, not decimal(20,0); the partition columns as before.
    from pyspark.sql import SparkSession, functions as F
    spark = (SparkSession.builder.master("local[1]").appName("weir-parquet-types")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.driver.host", "127.0.0.1")
             .getOrCreate())
    try:
        flows = spark.read.parquet(dataset)
        types = dict(flows.dtypes)
        for c in COUNTERS:
            if types[c] != "bigint":
                fail(f"Spark reads {c} as {types[c]}, want bigint")
        for c in ("date", "hour"):
            if c not in types:
                fail(f"Spark does not see the partition column {c}")
        agg = flows.agg(F.sum("bidirectional_bytes").alias("bytes"),
                        (F.max("bidirectional_last_seen_ms")
                         - F.min("bidirectional_first_seen_ms")).alias("span"))
        agg_types = dict(agg.dtypes)
        if agg_types["bytes"] != "bigint" or agg_types["span"] != "bigint":
            fail(f"Spark aggregates are {agg_types}, want bigint")
        row = agg.collect()[0]
        if row["bytes"] != want_bytes or row["span"] != want_span:
            fail(f"Spark: bytes {row['bytes']} span {row['span']}, CSV {want_bytes} {want_span}")
        partitions = {types["date"], types["hour"]}
    finally:
        spark.stop()
    print(json.dumps({"rows": len(df), "bytes": want_bytes, "partition_types": sorted(partitions)}))


if __name__ == "__main__":
    main()
