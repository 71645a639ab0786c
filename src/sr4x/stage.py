"""What every stage entry point shares: its name argument, and turning expected errors into clear exits."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable

from sr4x.atomic import OutputError
from sr4x.errors import ParamsError, ProjectError


def stage_argument(kind: str, allowed: Iterable[str]) -> str:
    """The stage's one argument (`python -m stages.train ARCH`), which must be among `allowed`."""
    allowed = list(allowed)
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in allowed:
        raise ParamsError(f"unknown {kind} {name!r}; allowed: {', '.join(allowed)}")
    return name


def run_stage(main: Callable[[], str]) -> None:
    """Run a stage's `main`, print its one-line summary with the elapsed time, exit 2 on bad input.

    The project's errors (invalid params, archives, ...) and files that cannot be read or written
    (a full disk) are the user's to fix, so they get one message naming the problem instead of a
    traceback.
    """
    start = time.perf_counter()
    try:
        summary = main()
    except (ProjectError, OSError) as err:
        print(f"error: {err.strerror if isinstance(err, OutputError) else err}", file=sys.stderr)
        sys.exit(2)
    minutes, seconds = divmod(int(time.perf_counter() - start), 60)
    print(f"{summary}, {minutes}m{seconds:02d}s", flush=True)
