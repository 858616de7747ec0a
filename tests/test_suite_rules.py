"""The rules of the test suite itself: the `slow` marker is set by the fixtures a test uses."""

import textwrap

import pytest

INNER = '''
    import pytest

    from tests.helpers import slow_fixture


    @pytest.fixture(scope="session")
    @slow_fixture
    def trained():
        return "a run"


    @pytest.fixture
    def through(trained):
        return trained


    def test_uses_the_training_fixture(trained):
        pass


    def test_uses_it_through_another_fixture(through):
        pass


    @pytest.mark.slow
    def test_marked_by_hand():
        pass


    def test_plain():
        pass
'''


@pytest.fixture
def inner(pytester, monkeypatch):
    """A small test file with the suite's collection hook, run by an inner pytest (without the
    installed plugins, which it would import afresh)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini('[pytest]\nmarkers = slow: trains\n')
    pytester.makeconftest("from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n")
    pytester.makepyfile(test_inner=textwrap.dedent(INNER))
    return pytester


def test_a_test_using_a_training_fixture_is_marked_slow(inner):
    quick = inner.inline_run("-m", "not slow", "-p", "no:cacheprovider")
    assert [r.nodeid.split("::")[-1] for r in quick.getreports("pytest_runtest_logreport") if r.when == "call"] \
        == ["test_plain"]
    slow = inner.inline_run("-m", "slow", "-p", "no:cacheprovider")
    slow.assertoutcome(passed=3)


def test_the_shared_runs_mark_their_users_slow(request):
    """In this session's collection: no test that uses a shared training run is left unmarked (under
    `-m "not slow"` none of them is collected at all)."""
    users = [item for item in request.session.items
             if {"mixed_run", "regression_run", "kfold_run"} & set(getattr(item, "fixturenames", ()))]
    assert all(item.get_closest_marker("slow") for item in users)
    if request.config.getoption("markexpr") == "not slow":
        assert users == []
