#!/usr/bin/env python3
"""Train a weir model with Spark on weir's Parquet records (a directory written by
`weir extract --out DIR/` or `[sinks] records = "DIR/"`), and write a `weir-model/1` directory.

    spark-submit models/spark/train_spark.py RECORDS_DIR... --out MODEL_DIR
        [--labels LABELS (CSV or Parquet, file or directory)] [--label-column COL]
        [--estimator rf|gb|logreg] [--max-rows-per-class N] [--min-class-samples N]
        [--n-estimators N] [--seed N] [--summary FILE.json] [--save-estimator FILE.joblib]
    python models/spark/train_spark.py ... --master local[2]      # no cluster: local mode

Spark does the part that outgrows one machine, on the executors and without Python UDFs (so
the executors need pyspark only):
  1. read the dataset (`date=`/`hour=` partitions; several writers' files are one table);
  2. clean: drop records without packets or without a flow key, drop repeats of a flow (the
     same key, start and end: a capture extracted twice into one directory), take the
     features as double (the model's input; weir's counters are INT64, Spark's bigint, and
     need no cast to be summed or joined);
  3. label: join the labels on the flow key (as models/weir_records.py does), or take the
     label column from the records;
  4. aggregate: flows per class (rare classes become `Other`, as train.py does) and flows,
     packets and bytes per hour and class (`--summary`, and `model.json` metadata.spark);
  5. sample: a stratified sample, at most --max-rows-per-class flows of each class, collected
     to the driver.
The driver then fits a scikit-learn model on the sample with models/train.py's `train` and
exports it through models/weir_export.py, the path weir's scoring parity is tested on.

Why scikit-learn on a Spark-prepared sample and not Spark MLlib through onnxmltools: the
onnxmltools Spark converter gets categorical splits wrong and turns a GBT into one node per
tree, so its scores would not be MLlib's; a forest of a few hundred thousand flows per class
fits one driver, and the export is then exactly what `weir extract --model` scores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from train import OTHER, train  # noqa: E402
from weir_records import DEFAULT_FEATURES, FLOW_KEY, FLOW_KEY_TIME, write_model_dir  # noqa: E402

# Integer columns of the flow key (a labels file's are cast to long, the records' type).
KEY_INTS = ["src_port", "dst_port", "protocol", "vlan_id", "tunnel_id", FLOW_KEY_TIME]


def spark_session(master: str | None):
    from pyspark.sql import SparkSession

    b = SparkSession.builder.appName("weir-train")
    if master:
        b = b.master(master)
    # Local mode: no UI port, few shuffle partitions (the default 200 is for a cluster).
    if master and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        b = (b.config("spark.ui.enabled", "false")
              .config("spark.ui.showConsoleProgress", "false")
              .config("spark.sql.shuffle.partitions", "4")
              .config("spark.driver.bindAddress", "127.0.0.1")
              .config("spark.driver.host", "127.0.0.1"))
    return b.getOrCreate()


def read_labels(spark, path: str, label_column: str):
    from pyspark.sql import functions as F

    p = Path(path)
    parquet = path.endswith(".parquet") or (p.is_dir() and any(p.rglob("*.parquet")))
    df = spark.read.parquet(path) if parquet else spark.read.csv(path, header=True)
    missing = [c for c in FLOW_KEY + [label_column] if c not in df.columns]
    if missing:
        raise SystemExit(f"{path}: labels need columns {missing}")
    key = FLOW_KEY + ([FLOW_KEY_TIME] if FLOW_KEY_TIME in df.columns else [])
    df = df.select(*[F.col(c).cast("long") if c in KEY_INTS else F.col(c).cast("string")
                     for c in key], F.col(label_column).cast("string").alias("_label"))
    return df.dropDuplicates(key), key


def prepare(spark, records: list[str], labels: str | None, label_column: str,
            features: list[str] | None, min_class_samples: int):
    """Steps 1 to 4: the cleaned, labelled records and what Spark counted on the way."""
    from pyspark.sql import functions as F

    df = spark.read.parquet(*records)
    stats = {"input_files": len(df.inputFiles()), "records_read": df.count()}
    if features is None:
        features = [f for f in DEFAULT_FEATURES if f in df.columns]
        if not features:
            raise SystemExit("none of the default features is in the records")
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise SystemExit(f"features not in the records: {missing}")

    # Clean.
    df = df.where((F.col("bidirectional_packets") > 0) & F.col("src_ip").isNotNull()
                  & F.col("dst_ip").isNotNull())
    df = df.dropDuplicates(FLOW_KEY + [FLOW_KEY_TIME, "bidirectional_last_seen_ms"])
    df = df.select(*[F.col(c) for c in FLOW_KEY],
                   F.col(FLOW_KEY_TIME),
                   F.col("bidirectional_last_seen_ms"),
                   F.col("bidirectional_packets").alias("_packets"),
                   F.col("bidirectional_bytes").alias("_bytes"),
                   *[F.col(f).cast("double").alias(f) for f in features
                     if f not in FLOW_KEY + [FLOW_KEY_TIME]],
                   *([F.col(label_column).cast("string").alias("_label")]
                     if labels is None and label_column in df.columns else []))
    df = df.cache()
    stats["records_clean"] = df.count()

    # Label.
    if labels is not None:
        lab, key = read_labels(spark, labels, label_column)
        df = df.join(lab, on=key, how="inner")
    elif "_label" not in df.columns:
        raise SystemExit(f"no label column {label_column!r} in the records; pass --labels")
    df = df.where(F.col("_label").isNotNull()).cache()

    # Aggregate: classes (rare ones become Other) and traffic per hour and class.
    counts = {r["_label"]: r["count"] for r in df.groupBy("_label").count().collect()}
    if not counts:
        raise SystemExit("no record matched a label")
    rare = sorted(c for c, n in counts.items() if n < min_class_samples)
    if rare:
        df = df.withColumn("_label", F.when(F.col("_label").isin(rare), F.lit(OTHER))
                           .otherwise(F.col("_label")))
    grouped: dict[str, int] = {}
    for c, n in counts.items():
        grouped[OTHER if c in rare else c] = grouped.get(OTHER if c in rare else c, 0) + n
    hour = F.date_format(F.timestamp_millis(F.col("bidirectional_last_seen_ms")),
                         "yyyy-MM-dd'T'HH")
    per_hour = (df.groupBy(hour.alias("hour"), "_label")
                .agg(F.count("*").alias("flows"), F.sum("_packets").alias("packets"),
                     F.sum("_bytes").alias("bytes"))
                .orderBy("hour", "_label").collect())
    stats["labelled"] = int(sum(counts.values()))
    stats["classes"] = {c: int(n) for c, n in sorted(counts.items())}
    stats["grouped_as_other"] = rare
    stats["training_classes"] = {c: int(n) for c, n in sorted(grouped.items())}
    stats["per_hour"] = [{"hour": r["hour"], "class": r["_label"], "flows": int(r["flows"]),
                          "packets": int(r["packets"]), "bytes": int(r["bytes"])}
                         for r in per_hour]
    return df, features, stats


def stratified_sample(df, counts: dict[str, int], max_rows_per_class: int, seed: int):
    """Step 5: at most about max_rows_per_class flows of each class (Spark's sampleBy)."""
    fractions = {c: min(1.0, max_rows_per_class / n) for c, n in counts.items()}
    if all(f >= 1.0 for f in fractions.values()):
        return df, counts
    return df.sampleBy("_label", fractions, seed), counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="+", help="weir Parquet dataset directories or files")
    ap.add_argument("--out", required=True, help="model directory to write (on the driver)")
    ap.add_argument("--labels", help="labels (CSV or Parquet) joined on the flow key")
    ap.add_argument("--label-column", default="application_category_name")
    ap.add_argument("--features", help="comma-separated feature names (default: train.py's)")
    ap.add_argument("--estimator", choices=("rf", "gb", "logreg"), default="rf")
    ap.add_argument("--max-rows-per-class", type=int, default=200_000)
    ap.add_argument("--min-class-samples", type=int, default=10)
    ap.add_argument("--test-size", type=float, default=0.25)
    ap.add_argument("--n-estimators", type=int, default=100)
    ap.add_argument("--max-depth", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default=None)
    ap.add_argument("--version", default="1")
    ap.add_argument("--master", help="Spark master, e.g. local[2] (spark-submit sets it)")
    ap.add_argument("--summary", help="also write what Spark counted to this JSON file")
    ap.add_argument("--save-estimator", help="also save the fitted estimator (joblib)")
    a = ap.parse_args(argv)

    spark = spark_session(a.master)
    try:
        features = [f.strip() for f in a.features.split(",")] if a.features else None
        df, features, stats = prepare(spark, a.records, a.labels, a.label_column, features,
                                      a.min_class_samples)
        sample, _ = stratified_sample(df, stats["training_classes"], a.max_rows_per_class,
                                      a.seed)
        pdf = sample.select(*features, "_label").toPandas()
        stats["sampled"] = int(len(pdf))
        stats["spark"] = spark.version
    finally:
        spark.stop()

    pdf = pdf.rename(columns={"_label": a.label_column})
    est, onx, meta = train(pdf, features, estimator=a.estimator, task="classification",
                           label_column=a.label_column, min_class_samples=a.min_class_samples,
                           test_size=a.test_size, seed=a.seed, n_estimators=a.n_estimators,
                           max_depth=a.max_depth)
    meta = {"name": a.name or Path(a.out).name, "version": a.version, **meta, "input": "X"}
    meta["metadata"]["trainer"] = "models/spark/train_spark.py (scikit-learn on a Spark sample)"
    meta["metadata"]["spark"] = {k: v for k, v in stats.items() if k != "per_hour"}
    meta["metadata"]["data"] = {"records": [str(r) for r in a.records], "labels": a.labels}
    out = write_model_dir(a.out, onx, meta)
    if a.summary:
        Path(a.summary).write_text(json.dumps(stats, indent=2) + "\n")
    if a.save_estimator:
        import joblib
        joblib.dump(est, a.save_estimator)
    m = meta["metadata"]["metrics"]
    print(f"wrote {out}/model.onnx and model.json: {a.estimator}, {len(features)} features; "
          f"{stats['records_read']} records read, {stats['labelled']} labelled, "
          f"{stats['sampled']} sampled; accuracy={m['accuracy']:.4f} f1_macro={m['f1_macro']:.4f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    sys.exit(main())
