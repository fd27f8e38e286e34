"""Why ``--config FILE.yaml`` is s2f's own layer over argparse (s2f.cli.config_file) and not jsonargparse.

Two measured differences, on what ``s2f prepare`` needs:

- import time of the parser stack, each in a fresh interpreter (median of ``--runs``): jsonargparse
  (which LightningCLI brings) against argparse + PyYAML;
- whether a config file may supply the one member of a required mutually exclusive group (prepare's
  input: ``--avspeech | --voxceleb | --folder | --manifest | --pairs``). jsonargparse 4.x refuses: it
  checks the group on the command line only, so ``s2f prepare --config x.yaml`` with ``folder:`` in
  the file would fail; s2f's layer accepts it, and a member given on the command line replaces the
  file's.

    python benchmarks/cli_config_parsers.py            # 7 runs per import
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _table import format_table, machine

_IMPORTS = {
    "jsonargparse": "import jsonargparse",
    "argparse + yaml": "import argparse, yaml",
}


def import_seconds(statement: str, runs: int) -> float:
    """Median wall time of a fresh interpreter that runs ``statement``, less the bare interpreter's."""

    def median(code: str) -> float:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return median(statement) - median("pass")


def _input_group(parser: argparse.ArgumentParser) -> None:
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--folder")
    inputs.add_argument("--voxceleb")
    parser.add_argument("--out", dest="out_dir")


def jsonargparse_reads_group_from_file(config: Path) -> str:
    import jsonargparse

    parser = jsonargparse.ArgumentParser(prog="prepare", exit_on_error=False)
    parser.add_argument("--config", action=jsonargparse.ActionConfigFile)
    _input_group(parser)
    try:
        parsed = parser.parse_args(["--config", str(config)])
    except (jsonargparse.ArgumentError, SystemExit) as exc:
        return f"refused: {str(exc).splitlines()[0] if str(exc) else 'exit'}"
    return f"folder={parsed.folder}"


def s2f_reads_group_from_file(config: Path) -> str:
    from s2f.cli.config_file import add_config_options, parse_with_config

    parser = argparse.ArgumentParser(prog="prepare")
    _input_group(parser)
    add_config_options(parser)
    return f"folder={parse_with_config(parser, ['--config', str(config)]).folder}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="interpreters per import (median)")
    runs = parser.parse_args().runs
    rows = [{"stack": name, "ms": 1000 * import_seconds(code, runs)} for name, code in _IMPORTS.items()]
    print(format_table(rows, [("import", "stack", "{}"), ("ms (median)", "ms", "{:.0f}")]))
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "prepare.yaml"
        config.write_text("folder: clips/\nout_dir: shards/\n")
        print("\nconfig file names the input (folder: clips/), command line gives none:")
        print(f"  jsonargparse {_version()}: {jsonargparse_reads_group_from_file(config)}")
        print(f"  s2f.cli.config_file:   {s2f_reads_group_from_file(config)}")
    print(f"\nmachine: {machine()}")


def _version() -> str:
    from importlib.metadata import version

    return version("jsonargparse")


if __name__ == "__main__":
    main()
