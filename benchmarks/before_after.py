"""Time one code version's streaming ``predict`` and two-stage time per frame, for before/after
comparisons: run it once per version, alternating, with ``PYTHONPATH`` naming that version's
checkout (a ``git worktree`` of the old commit), on the same warm machine.

    S=$PWD/benchmarks/before_after.py   # this file; the old checkout may not have it
    for i in 1 2 3 4; do for r in /tmp/old $PWD; do
      (cd $r && PYTHONPATH=$r $PY $S video MODEL VIDEO)
    done; done
    ... $S crowds RUN_DIR CLIP_VIDEO      # that version's benchmarks/crowds.py locator_share

Prints one line: ``video``: whole-call seconds and predict's own frames/s; ``crowds``: ms per
frame of locate + pose and of the locator alone.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path


def video(model: Path, clip: Path) -> str:
    from keypointer.commands.predict import predict_command

    out = Path(tempfile.mkdtemp()) / "o"
    printed = io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        predict_command(model, [clip], out, draw=False, device="cpu")
    own = float(re.search(r"([\d.]+) frames/s", printed.getvalue()).group(1))
    return f"{time.perf_counter() - began:.2f} s, {own:.1f} frames/s"


def crowds(run_dir: Path, clip: Path) -> str:
    sys.path.insert(0, os.path.join(os.environ.get("PYTHONPATH", "."), "benchmarks"))
    import crowds as bench  # this version's own

    found = bench.locator_share(run_dir, clip)
    return f"{found['total_ms']:.1f} ms/frame, locator {found['locator_ms']:.1f} ms"


if __name__ == "__main__":
    kind, first, second = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    print({"video": video, "crowds": crowds}[kind](first, second))
