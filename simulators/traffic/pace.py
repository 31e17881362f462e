"""The real-time pace of `credithub up`: a thread acting `rate` times a second,
idle while the knobs pause it or set the rate to 0 (how a demo drives it instead)."""

from __future__ import annotations

import logging
import threading
import time

from simulators.hospital_books import HospitalKnobs, Stats
from simulators.knobs import SimState
from simulators.traffic.generator import Traffic

log = logging.getLogger("simulators.hospital")


class RealTime:
    """Drives a generator at the knobs' rate until stopped."""

    def __init__(self, traffic: Traffic, state: SimState[HospitalKnobs], stats: Stats) -> None:
        self.traffic, self.state, self.stats = traffic, state, stats
        self.stopping, self.idle = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="his-traffic", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.traffic.world.stopping.set()  # a wait between retries ends at once
        if self.thread is not None:
            self.thread.join(timeout=20)

    def _run(self) -> None:
        while not self.stopping.is_set():
            knobs = self.state.knobs
            if knobs.paused or knobs.rate <= 0 or not self.traffic.world.config.partners.hospitals:
                self.idle.set()
                self.stopping.wait(0.1)
                continue
            self.idle.clear()
            started = time.monotonic()
            try:
                self.traffic.act(knobs.poll_interval_s)
            except Exception as exc:  # the desks keep working whatever one action did
                self.stats.count("driver", type(exc).__name__)
                log.warning("hospital simulator: an action failed: %s", type(exc).__name__)
            self.stopping.wait(max(0.0, 1 / knobs.rate - (time.monotonic() - started)))
