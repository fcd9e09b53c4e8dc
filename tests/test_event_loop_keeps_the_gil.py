"""Work a webhook does on the event loop must not let go of the GIL.

A C call that releases the GIL (os.urandom's getrandom, the one-shot hmac.digest) hands it to any
thread that wants it, and the event loop then waits until that thread gives it back: with the
database's worker threads busy, up to the switch interval (5 ms) per release, on every webhook
behind it. Latency a caller hears as silence, and throughput the load test lost.
"""

from __future__ import annotations

import base64
import os
import sys
import threading
import time
from collections.abc import Callable

import pytest

from api.webhooks.signature import compute_signature
from routing.sealing import Sealer

SWITCH_SECONDS = 0.5  # how long a waiting thread waits before it forces the GIL to be handed over
# How long the work is repeated: a release is often won back before the other thread wakes, so
# one call proves nothing; thousands do. Well under SWITCH_SECONDS, which would force a switch.
BUDGET_SECONDS = 0.15
CALL = "CA" + "1" * 32
FORM = {"CallSid": CALL, "From": "+31612345678", "Digits": "1"}


def lets_go_of_the_gil(work: Callable[[], object]) -> bool:
    """Whether `work`, repeated for BUDGET_SECONDS, let another thread run.

    A thread spins in Python while the work runs. With a long switch interval it can only get
    the GIL when the work releases it (or after SWITCH_SECONDS, far more than the budget).
    """
    ticks = 0
    started = threading.Event()
    stop = False

    def spin() -> None:
        nonlocal ticks
        started.set()
        while not stop:
            ticks += 1

    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_SECONDS)
    spinner = threading.Thread(target=spin, daemon=True)
    try:
        spinner.start()
        started.wait()  # the spinner holds the GIL until it is forced to give it back
        before = ticks
        until = time.perf_counter() + BUDGET_SECONDS
        while time.perf_counter() < until:
            work()
            if ticks != before:
                return True
        return False
    finally:
        stop = True
        spinner.join()
        sys.setswitchinterval(previous)


def test_the_detector_sees_a_call_that_lets_go() -> None:
    assert lets_go_of_the_gil(lambda: os.urandom(12))


@pytest.mark.parametrize(
    "work",
    [
        pytest.param(lambda sealer: sealer.seal('{"caller": "+31612345678"}'), id="seal"),
        pytest.param(lambda sealer: sealer.open(sealer.seal("{}")), id="open"),
        pytest.param(
            lambda _: compute_signature(b"token", "https://kcc.example/twilio/voice", FORM),
            id="signature",
        ),
    ],
)
def test_webhook_work_keeps_the_gil(work: Callable[[Sealer], object]) -> None:
    sealer = Sealer("a-test-secret-that-is-long-enough-0123456789")
    assert not lets_go_of_the_gil(lambda: work(sealer))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only where the OS has it")
# Python 3.12+ warns about fork() with threads alive (pytest's, a stub's); the child only seals.
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_worker_never_seals_with_its_parents_next_nonce() -> None:
    """AES-GCM must never see a nonce twice under one key: a worker forked from a process that
    has sealed must not draw the same random bytes as its parent."""
    sealer = Sealer("a-test-secret-that-is-long-enough-0123456789")
    sealer.seal("{}")  # the generator is seeded and in use before the fork
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: seal once, send the nonce, leave without running pytest's exit
        try:
            os.write(write_end, _nonce(sealer.seal("{}")))
        finally:
            os._exit(0)
    os.close(write_end)
    parent_nonce = _nonce(sealer.seal("{}"))
    child_nonce = os.read(read_end, 64)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child_nonce) == len(parent_nonce) == 12
    assert child_nonce != parent_nonce


def _nonce(sealed: str) -> bytes:
    return base64.b64decode(sealed.removeprefix("2."))[:12]
