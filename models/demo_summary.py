"""Print a short summary of the flows `make demo` extracted and scored."""

import sys

import pandas as pd


def main(path: str, alerts: str | None = None) -> None:
    df = pd.read_csv(path)
    print(f"{len(df)} flows, {int(df['bidirectional_packets'].sum())} packets, "
          f"{int(df['bidirectional_bytes'].sum())} bytes")
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
