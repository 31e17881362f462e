"""The traffic generator: one world of desks, driven in real time or a step at a time.

Either way one thread acts at a time (a lock), so a demo's step and the
real-time thread never interleave their actions on the same residents.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace
from typing import Any

from simulators.hospital_books import Book, Stats
from simulators.traffic import day, walk
from simulators.traffic.world import Tally, TrafficConfig, World

STEPS = tuple(day.STEPS)


class Traffic:
    """The hospitals' front desks and the banks' repayment desks, as one generator."""

    def __init__(self, config: TrafficConfig, seed: int, book: Book, stats: Stats) -> None:
        self.world = World(config, seed, book, stats)
        self.lock = threading.Lock()

    def act(self, poll_every_s: float) -> None:
        """One action of the real-time walk, at the wall clock's time."""
        with self.lock:
            walk.one_action(self.world, poll_every_s)

    def step(self, name: str, at: dt.datetime, count: int = 1) -> Tally:
        """One step of a simulated day (`STEPS`), acted at `at`; what it did."""
        with self.lock:
            before = replace(self.world.tally)
            self.world.at = at
            try:
                day.STEPS[name](self.world, count)
            finally:
                self.world.at = None
            return self.world.tally.since(before)

    def snapshot(self) -> dict[str, Any]:
        """How many residents and visits in progress the desks know, and their tally."""
        world = self.world
        return {
            "residents": len(world.residents),
            "visits_in_progress": len(world.visits),
            "firms_in_progress": len(world.firms),
            "tally": world.tally.as_dict(),
        }

    def close(self) -> None:
        self.world.close()
