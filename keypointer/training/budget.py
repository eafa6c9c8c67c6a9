"""``train.time``: fit the whole schedule into a wall-clock budget, re-planned while it runs.

The run's length in steps is re-estimated from the measured time per step (data loading
included) plus the last validation's cost (with its saves) spread over the steps since the one
before, keeping back what a validation and the final saves cost, so that warm-up, decay, a last
validation and best.pt all happen before the budget ends (Ultralytics' ``time`` does
the same per epoch; here it is per step, so one long epoch cannot overrun the budget).
"""

from __future__ import annotations

import time

EMA = 0.1  # weight of the newest step time: smooths noise, follows a machine that slows down
SKIP = 2  # the first steps pay for loader start-up and allocator warm-up
SAVE_GUESS_S = 1.0  # the final saves until a validation's were timed (the first plot imports)


class TimeBudget:
    """The steps that fit into ``minutes`` of wall time, ``elapsed`` seconds of which are
    spent already (set-up of this session, or the earlier sessions of a resumed run)."""

    def __init__(self, minutes: float, elapsed: float = 0.0) -> None:
        self.seconds = minutes * 60.0
        self.start = time.perf_counter() - elapsed
        self.step_s: float | None = None
        self.reserve_s = 0.0
        self.between_s = 0.0  # the last validation's cost per step since the one before
        self._seen = 0
        self._seen_at_finish = 0

    def elapsed(self) -> float:
        """Wall seconds spent, earlier sessions and set-up included."""
        return time.perf_counter() - self.start

    def observe_step(self, seconds: float) -> None:
        """Record one step's wall time (from the end of the last step to the end of this)."""
        self._seen += 1
        if self._seen <= SKIP and self.step_s is None:
            return
        self.step_s = seconds if self.step_s is None else EMA * seconds + (1 - EMA) * self.step_s

    def observe_finish(self, seconds: float) -> None:
        """Record what a validation plus the saves after it cost: kept back for the last one,
        and spread over the steps since the last one, as validations recur (counting steps
        only, a run of short epochs with a validation after each overran its plan and cut
        its cosine short). The latest counts, not the first: that one pays one-off costs."""
        self.reserve_s = seconds
        self.between_s = seconds / max(self._seen - self._seen_at_finish, 1)
        self._seen_at_finish = self._seen

    def total_steps(self, done: int, guess_reserve_steps: float = 0.0) -> int | None:
        """Steps in the whole run if it is to end on time; None before any step was timed.
        ``guess_reserve_steps``: the final validation's cost in steps (plus
        :data:`SAVE_GUESS_S` for its saves until one was timed)."""
        if self.step_s is None:
            return None
        guess = guess_reserve_steps * self.step_s + (0.0 if self.reserve_s else SAVE_GUESS_S)
        reserve = max(self.reserve_s, guess)
        left = self.seconds - self.elapsed()
        # Two bounds on the steps left: each step with its share of the validations (the
        # last of which ends the run), and the steps alone with the final validation kept back.
        spread = left / (self.step_s + self.between_s)
        return done + max(int(min(spread, (left - reserve) / self.step_s)), 0)
