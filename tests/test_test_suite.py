"""The rule for slow tests (tests/support/slow.py) fails a test that breaks it, in a pytest run
of its own: a test that asks for the browser, or starts a process, without `@pytest.mark.slow`."""

from __future__ import annotations

import pytest

from tests.support.slow import require_slow

CONFTEST = """
import pytest

pytest_plugins = ["tests.support.slow"]


@pytest.fixture
def browser() -> str:
    return "a browser"
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """An empty test suite with the rule's plugin and a stand-in `browser` fixture."""
    pytester.makeconftest(CONFTEST)
    # Plain asserts: this suite has imported the plugin already, too late to rewrite it.
    pytester.makeini(
        "[pytest]\naddopts = --strict-markers --assert=plain -p no:cacheprovider -p no:asyncio\n"
    )
    return pytester


@pytest.mark.parametrize("marked", [True, False], ids=["marked", "unmarked"])
def test_a_test_asking_for_the_browser_must_be_marked_slow(
    suite: pytest.Pytester, marked: bool
) -> None:
    mark = "@pytest.mark.slow\n" if marked else ""
    suite.makepyfile(f"import pytest\n\n{mark}def test_page(browser: str) -> None:\n    pass\n")

    result = suite.runpytest_inprocess()

    if marked:
        result.assert_outcomes(passed=1)
    else:
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["*mark these tests @pytest.mark.slow:*", "*test_page (uses browser)*"]
        )


@pytest.mark.parametrize("marked", [True, False], ids=["marked", "unmarked"])
def test_a_test_starting_a_server_must_be_marked_slow(suite: pytest.Pytester, marked: bool) -> None:
    mark = "@pytest.mark.slow\n" if marked else ""
    suite.makepyfile(
        "import pytest\n"
        "from tests.support.slow import require_slow\n\n"
        f'@pytest.fixture(scope="module")\ndef server() -> None:\n    require_slow("kcc serve")\n\n'
        f"{mark}def test_call(server: None) -> None:\n    pass\n"
    )

    result = suite.runpytest_inprocess()

    if marked:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(errors=1)  # in the fixture's set-up
        result.stdout.fnmatch_lines(["*test_call starts kcc serve: mark it @pytest.mark.slow*"])


def test_outside_a_test_nothing_is_required() -> None:
    """The simulator and the servers also run outside pytest (benchmarks, demos)."""
    from tests.support import slow

    running, slow._running[:] = list(slow._running), []
    try:
        require_slow("kcc serve")
    finally:
        slow._running[:] = running
