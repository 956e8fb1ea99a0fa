"""weir from Python, for NFStream users: the flow records of captures as a pandas DataFrame.

    import weir
    df = weir.extract("x.pcap", plugins=["flowstats", "splt"])      # one row per flow
    weir.extract_to("x.pcap", "out/")                                # a Parquet dataset

Both run the `weir` binary (`weir extract`, the real DPDK data path over the capture) and read
its Parquet. The binary is `WEIR_BIN`, else `weir` on PATH, else `target/release/weir` of a
build tree in the current directory or one of its parents.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

__all__ = ["extract", "extract_to", "weir_binary", "WeirError"]

PathLike = Union[str, os.PathLike]
Captures = Union[PathLike, Sequence[PathLike]]


class WeirError(RuntimeError):
    """`weir extract` failed; the message holds its stderr."""


def weir_binary() -> Path:
    """The weir executable: `WEIR_BIN`, else `weir` on PATH, else a build tree's."""
    env = os.environ.get("WEIR_BIN")
    if env:
        p = Path(env)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise WeirError(f"WEIR_BIN={env} is not an executable file")
        return p
    on_path = shutil.which("weir")
    if on_path:
        return Path(on_path)
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        p = d / "target" / "release" / "weir"
        if p.is_file() and os.access(p, os.X_OK):
            return p
    raise WeirError("no weir binary: set WEIR_BIN, put weir on PATH, or run from a build tree "
                    "(cargo build --release)")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, os.PathLike)):
        s = os.fspath(v)
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} {v!r} as a TOML value")


def _toml(table: Mapping, prefix: str = "") -> str:
    """A nested dict as TOML (tables, arrays of tables for lists of dicts, scalars, arrays)."""
    lines, subs = [], []
    for k, v in table.items():
        if isinstance(v, Mapping):
            subs.append((f"{prefix}{k}", v, False))
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, Mapping) for x in v):
            subs.extend((f"{prefix}{k}", x, True) for x in v)
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for name, sub, array in subs:
        out += f"\n[[{name}]]\n" if array else f"\n[{name}]\n"
        out += _toml(sub, prefix=f"{name}.")
    return out


def _command(captures: Captures, out: str, plugins: Optional[Iterable[str]],
             config: Optional[Union[PathLike, Mapping]], workers: Optional[int],
             tmp: Path) -> list:
    caps = [captures] if isinstance(captures, (str, os.PathLike)) else list(captures)
    if not caps:
        raise ValueError("no capture given")
    for c in caps:
        if not Path(c).is_file():
            raise FileNotFoundError(f"capture {os.fspath(c)} not found")
    cmd = [str(weir_binary()), "extract", *map(os.fspath, caps), "--out", out, "--quiet",
           "--no-progress"]
    table: dict = {}
    if isinstance(config, Mapping):
        table = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in config.items()}
    elif config is not None:
        cmd += ["--config", os.fspath(config)]
    if plugins is not None:
        plugins = list(plugins)
        if not plugins:
            cmd.append("--no-plugins")
        elif isinstance(config, (str, os.PathLike)):
            raise ValueError("plugins= with a config file: list the plugins in its [plugins] "
                             "enabled, or pass config as a dict")
        else:
            table.setdefault("plugins", {})["enabled"] = plugins
    if table:
        path = tmp / "weir.toml"
        path.write_text(_toml(table))
        cmd += ["--config", str(path)]
    if workers is not None:
        cmd += ["--workers", str(int(workers))]
    return cmd


def _run(cmd: list) -> None:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise WeirError(f"{' '.join(cmd)} failed (exit {p.returncode}):\n{p.stderr.strip()}")


def extract(captures: Captures, plugins: Optional[Iterable[str]] = None,
            config: Optional[Union[PathLike, Mapping]] = None,
            workers: Optional[int] = None):
    """The flow records of `captures` (a pcap/pcapng path or a list of them) as a DataFrame.

    plugins: the plugins to run, by name (`None`: every plugin found, `[]`: none).
    config: a weir.toml path, or a dict of the same tables (`{"flows": {"idle_timeout_s": 60}}`).
    workers: `--workers`.
    """
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="weir-") as d:
        tmp = Path(d)
        out = tmp / "flows.parquet"
        _run(_command(captures, str(out), plugins, config, workers, tmp))
        return pd.read_parquet(out)


def extract_to(captures: Captures, out_dir: PathLike,
               plugins: Optional[Iterable[str]] = None,
               config: Optional[Union[PathLike, Mapping]] = None,
               workers: Optional[int] = None) -> Path:
    """Write the records of `captures` into the Parquet dataset directory `out_dir`
    (`date=/hour=` partitions; several calls may write into one directory). Returns it."""
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="weir-") as d:
        _run(_command(captures, os.fspath(out).rstrip("/") + "/", plugins, config, workers,
                      Path(d)))
    return out
