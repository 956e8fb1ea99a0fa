"""Print a short summary of the flows `make demo` extracted and scored."""

import json
import sys
from pathlib import Path

import pandas as pd


def labels_source(model_dir: str | None) -> str | None:
    """Which labels the demo model was trained on, from its model.json."""
    if not model_dir:
        return None
    try:
        meta = json.loads((Path(model_dir) / "model.json").read_text()).get("metadata", {})
    except (OSError, ValueError):
        return None
    col = meta.get("label_column") or "?"
    if meta.get("labels"):
        return f"NFStream's {col} ({meta['labels']}): the ndpi plugin is not built"
    return f"weir's own records: the ndpi plugin's {col}"


def main(path: str, alerts: str | None = None, model_dir: str | None = None) -> None:
    df = pd.read_csv(path)
    print(f"{len(df)} flows, {int(df['bidirectional_packets'].sum())} packets, "
          f"{int(df['bidirectional_bytes'].sum())} bytes")
    source = labels_source(model_dir)
    if source:
        print(f"model trained on labels from {source}")
    if "application_name" in df.columns:
        print("\napplications (the ndpi plugin's application_name: flows, bytes):")
        g = df.groupby("application_name").agg(flows=("application_name", "size"),
                                                bytes=("bidirectional_bytes", "sum"))
        print(g.sort_values("bytes", ascending=False).head(8).to_string())
    if "prediction" in df.columns:
        print("\npredicted traffic categories (flows, bytes):")
        g = df.groupby("prediction").agg(flows=("prediction", "size"),
                                         bytes=("bidirectional_bytes", "sum"))
        print(g.sort_values("bytes", ascending=False).to_string())
    cols = ["src_ip", "src_port", "dst_ip", "dst_port", "protocol", "bidirectional_packets",
            "bidirectional_bytes", "peak_pps"]
    if "prediction" in df.columns:
        cols.append("prediction")
    cols = [c for c in cols if c in df.columns]
    print("\nlargest flows:")
    print(df.nlargest(5, "bidirectional_bytes")[cols].to_string(index=False))
    if alerts:
        try:
            a = pd.read_json(alerts, lines=True)
        except (OSError, ValueError):
            a = pd.DataFrame()
        print(f"\n{len(a)} alerts in {alerts}")
        if len(a):
            print(a.groupby(["kind", "key_type"]).size().rename("alerts").to_string())
            top = a[a["kind"].isin(["absolute", "fraction"])]
            if len(top):
                print("\nthreshold crossings:")
                print(top[["time_ms", "key", "kind", "rate_pps", "threshold"]].head(5)
                      .to_string(index=False))


if __name__ == "__main__":
    main(*sys.argv[1:])
