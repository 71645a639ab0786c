"""What every stage entry point shares: paths, and turning expected errors into clear exits."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from src.archive import ArchiveError
from src.atomic import OutputError
from src.config import ParamsError

RAW_ARCHIVE = Path("data/raw/cifar-10-python.tar.gz")
PREPARED = Path("data/prepared")


def run_stage(main: Callable[[], str]) -> None:
    """Run a stage's `main`, print its one-line summary with the elapsed time, exit 2 on bad input.

    Invalid params, invalid archives and files that cannot be read or written (a full disk) are
    the user's to fix, so they get one message naming the problem instead of a traceback.
    """
    start = time.perf_counter()
    try:
        summary = main()
    except (ParamsError, ArchiveError, OSError) as err:
        print(f"error: {err.strerror if isinstance(err, OutputError) else err}", file=sys.stderr)
        sys.exit(2)
    minutes, seconds = divmod(int(time.perf_counter() - start), 60)
    print(f"{summary}, {minutes}m{seconds:02d}s", flush=True)


def split_sizes() -> dict[str, int]:
    """Number of pairs in each prepared split, read without loading the tensors."""
    import json

    return json.loads((PREPARED / "info.json").read_text())
