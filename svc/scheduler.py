"""A fair queue of conversion jobs per device, shared by everyone using one server.

Each device runs one job at a time (a second conversion on the same CPU or GPU would only halve
the speed of both and double the memory).  Waiting jobs are served fairly: a visitor never has
two jobs running, and among the visitors waiting the one served least recently goes first, so
one person queueing ten songs cannot starve the next person's one.  Positions and waiting times
come from measured throughput (seconds of work per second of audio, per device and model).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .progress import Cancelled, CancelToken

# Weight of the newest measurement in the running throughput estimate.
RATE_SMOOTHING = 0.5


@dataclass(eq=False)
class Job:
    """One queued or running piece of work; ``work`` is its size in seconds of audio."""

    owner: str
    device: str
    label: str
    work: float
    kind: str = ""  # what the throughput estimate is keyed on, with the device (the model)
    token: CancelToken = field(default_factory=CancelToken)
    number: int = 0  # arrival order
    started: float | None = None
    fraction: float = 0.0  # how much of it is done, as last reported

    def report(self, fraction: float) -> None:
        self.fraction = min(max(fraction, 0.0), 1.0)


@dataclass(frozen=True)
class QueueStatus:
    """Where a waiting job stands: ``position`` 1 means it runs next; ``wait`` in seconds or None."""

    position: int
    wait: float | None
    device: str

    def describe(self) -> str:
        ahead = "next in line" if self.position == 1 else f"position {self.position} in line"
        if self.wait is None:
            return f"waiting for {self.device}: {ahead} (no time estimate yet)"
        return f"waiting for {self.device}: {ahead}, about {format_seconds(self.wait)}"


def format_seconds(seconds: float) -> str:
    """'45 s', '3 min 5 s', '1 h 2 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class Scheduler:
    """Per-device fair queues; thread-safe.  Use ``submit`` then ``with turn(job, ...)``."""

    def __init__(self, slots_per_device: int = 1, poll_seconds: float = 1.0) -> None:
        self.slots = max(1, slots_per_device)
        self.poll_seconds = poll_seconds
        self._cond = threading.Condition()
        self._waiting: list[Job] = []
        self._running: list[Job] = []
        self._served: dict[str, int] = {}  # owner -> when last started (a counter, not a clock)
        self._counter = itertools.count(1)
        self._rates: dict[tuple[str, str], float] = {}  # (device, kind) -> seconds per audio second

    def submit(self, owner: str, device: str, label: str, work: float, kind: str = "") -> Job:
        """Queue a job; it runs when ``turn`` admits it."""
        with self._cond:
            job = Job(owner, device, label, max(work, 0.0), kind, number=next(self._counter))
            self._waiting.append(job)
            self._cond.notify_all()
            return job

    @contextmanager
    def turn(self, job: Job, on_wait: Callable[[QueueStatus], None] | None = None) -> Iterator[Job]:
        """Wait until ``job`` may run (reporting its place to ``on_wait``), hold its device, release.

        Raises ``Cancelled`` if the job is cancelled while waiting; a job cancelled while running
        is stopped by its own progress checks.  Leaving the block frees the device for the next job.
        """
        self._wait_for_turn(job, on_wait)
        finished = False
        try:
            yield job
            finished = True
        finally:
            with self._cond:
                self._running.remove(job)
                if finished and job.started is not None and job.work > 0:
                    self._record_rate(job, (time.monotonic() - job.started) / job.work)
                self._cond.notify_all()

    def _wait_for_turn(self, job: Job, on_wait: Callable[[QueueStatus], None] | None) -> None:
        while True:
            with self._cond:
                if job.token.cancelled:
                    self._waiting.remove(job)
                    self._cond.notify_all()
                    raise Cancelled(job.token.reason)
                if self._admissible(job):
                    self._waiting.remove(job)
                    self._running.append(job)
                    self._served[job.owner] = next(self._counter)
                    job.started = time.monotonic()
                    return
                status = self._status(job)
            if on_wait is not None:
                on_wait(status)  # outside the lock: it may be slow, and it may raise to cancel
            with self._cond:
                if not job.token.cancelled and not self._admissible(job):
                    self._cond.wait(self.poll_seconds)

    def _admissible(self, job: Job) -> bool:
        busy = sum(1 for j in self._running if j.device == job.device)
        owner_busy = any(j.owner == job.owner for j in self._running)  # one running job per visitor
        return busy < self.slots and not owner_busy and self._order(job.device)[:1] == [job]

    def _order(self, device: str) -> list[Job]:
        """The device's waiting jobs in the order they would run: repeatedly the job of the owner
        served least recently (oldest job first), owners already running a job after the others."""
        waiting = [j for j in self._waiting if j.device == device]
        served = dict(self._served)
        running = {j.owner for j in self._running}
        order, tick = [], itertools.count(max(served.values(), default=0) + 1)
        while waiting:
            def rank(j: Job) -> tuple[int, int, int]:
                return (j.owner in running, served.get(j.owner, 0), j.number)
            best = min(waiting, key=rank)
            order.append(best)
            waiting.remove(best)
            running.discard(best.owner)  # its running job will be done before this one starts
            served[best.owner] = next(tick)
        return order

    def _status(self, job: Job) -> QueueStatus:
        order = self._order(job.device)
        ahead = order[: order.index(job)]
        running = [j for j in self._running if j.device == job.device]
        estimates = [self._remaining(j) for j in running] + [self._expected(j) for j in ahead]
        wait = None if any(e is None for e in estimates) else sum(estimates) / self.slots
        return QueueStatus(len(ahead) + 1, wait, job.device)

    def _rate(self, job: Job) -> float | None:
        rate = self._rates.get((job.device, job.kind))
        return rate if rate is not None else self._rates.get((job.device, ""))

    def _expected(self, job: Job) -> float | None:
        rate = self._rate(job)
        return None if rate is None else rate * job.work

    def _remaining(self, job: Job) -> float | None:
        elapsed = time.monotonic() - (job.started or time.monotonic())
        if job.fraction >= 0.05:  # its own progress is the better estimate once it has some
            return elapsed * (1 - job.fraction) / job.fraction
        expected = self._expected(job)
        return None if expected is None else max(expected - elapsed, 0.0)

    def _record_rate(self, job: Job, rate: float) -> None:
        for key in ((job.device, job.kind), (job.device, "")):
            old = self._rates.get(key)
            self._rates[key] = rate if old is None else (1 - RATE_SMOOTHING) * old + RATE_SMOOTHING * rate

    def cancel(self, owner: str, reason: str = "cancelled") -> int:
        """Cancel every queued and running job of ``owner``; returns how many there were."""
        with self._cond:
            jobs = [j for j in self._waiting + self._running if j.owner == owner]
            for job in jobs:
                job.token.cancel(reason)
            self._cond.notify_all()
            return len(jobs)

    def jobs(self, owner: str | None = None) -> list[Job]:
        """Running jobs, then waiting jobs in the order they will run (of ``owner``, or everyone's)."""
        with self._cond:
            devices = dict.fromkeys(j.device for j in self._waiting)
            waiting = [j for device in devices for j in self._order(device)]
            return [j for j in self._running + waiting if owner is None or j.owner == owner]
