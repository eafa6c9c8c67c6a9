"""``keypointer train``: resolve the config (or the resumed run's), train, say where things are."""

from __future__ import annotations

from pathlib import Path

from keypointer.config import load_config
from keypointer.training.loop import Run, resume_config, train
from keypointer.training.two_stage import summary_line


def train_command(
    data: Path | None, config: Path | None, overrides: list[str], resume: Path | None, quiet: bool
) -> Run:
    """What ``keypointer train`` does: resolve the config, train, print where things are."""
    if resume is not None:
        cfg = resume_config(resume, overrides)
    else:
        cfg = load_config(config, overrides)
        if data is not None:
            cfg.data.path = str(data)
    if quiet:
        cfg.run.quiet = True
    run = train(cfg, resume=resume)
    if run.dir is not None:
        print(f"run folder: {run.dir}\nbest checkpoint: {run.best}")
        if run.locator_metrics is not None:  # several instances per image: a two-stage model
            print(f"{summary_line(run.locator_metrics)} (in the same checkpoint)")
    return run
