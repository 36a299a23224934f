"""Progress reports and cancellation of one conversion.

The pipeline reports ``progress(fraction, text)`` between its stages.  The vocoder reports its
own finer steps (upsampling stages, time tiles) through ``report_work``, which forwards them to
the callback the pipeline installed with ``work_reporter`` for the current thread, so a model
needs no progress argument.  A caller cancels a job by making its callback raise ``Cancelled``:
the job stops at the next report, inside the piece it is working on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import SvcError

Progress = Callable[[float, str], None]

_local = threading.local()


class Cancelled(SvcError):
    """The job was cancelled by its owner (a Cancel button, a closed page, Ctrl-C)."""


@contextmanager
def work_reporter(report: Callable[[float], None]) -> Iterator[None]:
    """Route ``report_work(fraction)`` calls made by this thread to ``report`` while inside."""
    previous = getattr(_local, "report", None)
    _local.report = report
    try:
        yield
    finally:
        _local.report = previous


def report_work(fraction: float) -> None:
    """Say that ``fraction`` (0..1) of the current stage's work is done; may raise ``Cancelled``."""
    report = getattr(_local, "report", None)
    if report is not None:
        report(min(max(fraction, 0.0), 1.0))


class CancelToken:
    """A flag one job checks at every progress report; ``cancel()`` may be called from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = "cancelled"

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``Cancelled`` if the job was cancelled."""
        if self._event.is_set():
            raise Cancelled(self.reason)

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on cancellation; True if cancelled."""
        return self._event.wait(timeout)

    def guard(self, progress: Progress | None = None) -> Progress:
        """A progress callback that checks this token first, then forwards to ``progress``."""

        def report(fraction: float, text: str) -> None:
            self.check()
            if progress is not None:
                progress(fraction, text)

        return report
