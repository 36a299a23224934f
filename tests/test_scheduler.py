"""The per-device fair queue: order, one job per visitor, cancellation, honest waiting times."""

import threading
import time

import pytest

from svc.progress import Cancelled, CancelToken, report_work, work_reporter
from svc.scheduler import Scheduler, format_seconds


def run_in_thread(scheduler, job, log, hold: threading.Event | None = None, statuses=None):
    def body():
        try:
            with scheduler.turn(job, on_wait=statuses.append if statuses is not None else None):
                log.append(("start", job.label))
                if hold is not None:
                    hold.wait(10)
                log.append(("end", job.label))
        except Cancelled:
            log.append(("cancelled", job.label))

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_visitors_take_turns_instead_of_first_come_first_served():
    scheduler = Scheduler(poll_seconds=0.02)
    log, gate = [], threading.Event()
    first = scheduler.submit("alice", "cpu", "a1", 10)
    threads = [run_in_thread(scheduler, first, log, gate)]
    wait_until(lambda: ("start", "a1") in log)
    # Alice queues two more songs, then Bob one: Bob's runs before Alice's second and third.
    jobs = [scheduler.submit("alice", "cpu", "a2", 10), scheduler.submit("alice", "cpu", "a3", 10),
            scheduler.submit("bob", "cpu", "b1", 10)]
    threads += [run_in_thread(scheduler, job, log) for job in jobs]
    gate.set()
    for thread in threads:
        thread.join(10)
    assert [label for what, label in log if what == "start"] == ["a1", "b1", "a2", "a3"]
    # Never two jobs at once on one device.
    running = 0
    for what, _ in log:
        running += {"start": 1, "end": -1}[what]
        assert running <= 1


def test_devices_run_side_by_side_but_a_visitor_runs_one_job_at_a_time():
    scheduler = Scheduler(poll_seconds=0.02)
    log, gate = [], threading.Event()
    jobs = [scheduler.submit("alice", "cpu", "a-cpu", 1), scheduler.submit("bob", "cuda:0", "b-gpu", 1),
            scheduler.submit("alice", "cuda:0", "a-gpu", 1)]
    threads = [run_in_thread(scheduler, job, log, gate) for job in jobs]
    wait_until(lambda: ("start", "a-cpu") in log and ("start", "b-gpu") in log)
    time.sleep(0.1)
    assert ("start", "a-gpu") not in log  # the GPU is busy and Alice already has a job running
    gate.set()
    for thread in threads:
        thread.join(10)
    assert ("end", "a-gpu") in log


def test_cancelling_a_waiting_job_removes_it_and_a_running_one_stops_at_its_next_check():
    scheduler = Scheduler(poll_seconds=0.02)
    log, gate = [], threading.Event()
    running = scheduler.submit("alice", "cpu", "a1", 1)
    waiting = scheduler.submit("bob", "cpu", "b1", 1)
    threads = [run_in_thread(scheduler, running, log, gate), run_in_thread(scheduler, waiting, log)]
    wait_until(lambda: ("start", "a1") in log)
    assert scheduler.cancel("bob", "page closed") == 1
    threads[1].join(5)
    assert ("cancelled", "b1") in log and ("start", "b1") not in log
    assert scheduler.jobs("bob") == []
    assert scheduler.cancel("alice") == 1
    with pytest.raises(Cancelled, match="cancelled"):
        running.token.check()
    gate.set()
    threads[0].join(5)
    assert scheduler.jobs() == []


def test_waiting_time_comes_from_measured_throughput():
    scheduler = Scheduler(poll_seconds=0.02)
    with scheduler.turn(scheduler.submit("alice", "cpu", "warm-up", 10.0, kind="m")):
        time.sleep(0.2)  # 0.02 s of work per second of audio
    log, gate, statuses = [], threading.Event(), []
    first = scheduler.submit("alice", "cpu", "a1", 100.0, kind="m")
    threads = [run_in_thread(scheduler, first, log, gate)]
    wait_until(lambda: ("start", "a1") in log)
    second = scheduler.submit("bob", "cpu", "b1", 50.0, kind="m")
    third = scheduler.submit("carol", "cpu", "c1", 50.0, kind="m")
    threads += [run_in_thread(scheduler, second, log), run_in_thread(scheduler, third, log, statuses=statuses)]
    wait_until(lambda: len(statuses) >= 2)
    status = statuses[-1]
    assert status.position == 2
    # Alice's 100 s song (about 2 s of work, partly done) plus Bob's 50 s (about 1 s) are ahead.
    assert 1.0 < status.wait < 3.5
    assert "position 2" in status.describe() and "about" in status.describe()
    gate.set()
    for thread in threads:
        thread.join(10)


def test_no_estimate_is_claimed_before_anything_was_measured():
    scheduler = Scheduler(poll_seconds=0.02)
    log, gate, statuses = [], threading.Event(), []
    threads = [run_in_thread(scheduler, scheduler.submit("alice", "cpu", "a1", 60), log, gate)]
    wait_until(lambda: ("start", "a1") in log)
    threads.append(run_in_thread(scheduler, scheduler.submit("bob", "cpu", "b1", 60), log, statuses=statuses))
    wait_until(lambda: statuses)
    assert statuses[0].wait is None and "no time estimate" in statuses[0].describe()
    gate.set()
    for thread in threads:
        thread.join(10)


def test_work_reports_reach_the_installed_reporter_and_can_cancel():
    token, seen = CancelToken(), []
    report_work(0.5)  # no reporter installed: nothing happens
    with work_reporter(lambda fraction: (seen.append(fraction), token.check())):
        report_work(0.25)
        token.cancel("stop")
        with pytest.raises(Cancelled, match="stop"):
            report_work(2.0)
    assert seen == [0.25, 1.0]


def test_format_seconds():
    assert [format_seconds(s) for s in (4.4, 65, 3720)] == ["4 s", "1 min 5 s", "1 h 2 min"]
