"""The rule for slow tests, as a pytest plugin (tests/conftest.py loads it): a test that starts a
`kcc serve`, another app process or a browser carries `@pytest.mark.slow`, so that
`pytest -m "not slow"` is a quick run. CI runs them all.

Two checks, both failing the test that breaks the rule: at collection, a test that asks for a
fixture of SLOW_FIXTURES; while it runs, a test that starts a process through `require_slow`
(tests/support/servers.py and call_simulator.py call it), however it got there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

SLOW_FIXTURES = frozenset({"browser"})  # a Chromium per module

_running: list[pytest.Item] = []  # the test being set up, run or torn down


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: starts a kcc serve, an app process or a browser")


def _unmarked(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fails the run when a test that asks for a slow fixture is not marked slow."""
    wrong = [
        f"{item.nodeid} (uses {', '.join(sorted(SLOW_FIXTURES & set(fixtures)))})"
        for item in items
        if _unmarked(item) and SLOW_FIXTURES & set(fixtures := getattr(item, "fixturenames", ()))
    ]
    if wrong:
        raise pytest.UsageError("mark these tests @pytest.mark.slow:\n  " + "\n  ".join(wrong))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Remembers the test while it runs: its fixtures start their processes in it."""
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.remove(item)


def require_slow(what: str) -> None:
    """Fails the running test unless it is marked slow; `what` is what it was about to start."""
    if _running and _unmarked(_running[-1]):
        pytest.fail(f"{_running[-1].nodeid} starts {what}: mark it @pytest.mark.slow")
