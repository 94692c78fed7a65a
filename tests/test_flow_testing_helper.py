"""``ivr.testing.call`` (flow tests for admins) and the ``--flow-coverage`` pytest plugin."""
from __future__ import annotations

import textwrap

import pytest

from ivr.testing import COVERAGE, FlowCoverage, call

pytest_plugins = ["pytester"]

SMALL_FLOW = """\
description: a tiny line for testing the helper
steps:
  menu:
    type: menu
    prompt: Press 1 for news, 2 for the weather.
    choices: {1: news, 2: weather, 3: agent}
    retries: 2
    on_exhausted: bye
  news:
    type: say
    prompt: Hello ${caller_name}, nothing happened today.
    next: bye
  weather:
    type: say
    number: "42"
    next: bye
  agent:
    type: queue
    queue: support
    after: bye
  bye:
    type: hangup
    prompt: {sound: vm-goodbye}
"""


@pytest.fixture
def small_flow(tmp_path):
    path = tmp_path / "helper_small.yaml"
    path.write_text(SMALL_FLOW)
    return path


def test_checks_chain_and_pass(small_flow):
    """A call that goes where the test says passes every check."""
    c = (call(small_flow, caller_name="Ann")
         .hears("press 1 for news")
         .press("1")
         .hears("Hello")
         .hears("nothing happened today")
         .hears_sound("vm-goodbye")
         .visited("news")
         .not_visited("weather")
         .ends_with("completed"))
    assert c.steps == ["menu", "news", "bye"]


def test_a_failed_check_prints_the_transcript(small_flow):
    """The assertion message holds the call so far: prompts, keys and path."""
    with pytest.raises(AssertionError) as failure:
        call(small_flow).press("2").hears("sunny")
    message = str(failure.value)
    assert "did not hear 'sunny'" in message
    assert '🔊 "Press 1 for news, 2 for the weather."' in message
    assert "⌨️  pressed 2" in message
    assert "🔢 says number 42" in message
    assert "path: menu → weather → bye" in message


def test_hears_looks_only_after_the_last_check(small_flow):
    """A prompt matched once cannot satisfy a later check."""
    c = call(small_flow).hears("press 1")
    with pytest.raises(AssertionError):
        c.hears("press 1")


def test_not_hears_fails_on_a_heard_text(small_flow):
    """not_hears names the prompt that was heard."""
    with pytest.raises(AssertionError, match="heard 'weather'"):
        call(small_flow).not_hears("weather")


def test_number_check(small_flow):
    """hears_number matches SAY NUMBER; another number fails."""
    call(small_flow).press("2").hears_number(42)
    with pytest.raises(AssertionError, match="the number 41"):
        call(small_flow).press("2").hears_number(41)


def test_pressing_keys_while_queued_is_refused(small_flow):
    """The helper says what the call waits for instead of guessing."""
    c = call(small_flow).press("3").ends_in_queue("support")
    with pytest.raises(AssertionError, match="waits for queue, not input"):
        c.press("1")


def test_queue_then_the_flow_goes_on(small_flow):
    """agent_answers() ends the queue and the flow continues at ``after``."""
    c = call(small_flow).press("3").ends_in_queue("support", priority=0).agent_answers()
    c.hears_sound("vm-goodbye").ends_with("queued", target="support")


def test_wrong_queue_and_wrong_outcome_are_reported(small_flow):
    """ends_in_queue / ends_with say what actually happened."""
    with pytest.raises(AssertionError, match="in queue 'support', expected 'vip'"):
        call(small_flow).press("3").ends_in_queue("vip")
    with pytest.raises(AssertionError, match="ended with completed, expected voicemail"):
        call(small_flow).press("1").ends_with("voicemail")
    with pytest.raises(AssertionError, match="not over"):
        call(small_flow).ends_with("completed")


def test_timeouts_and_hangup(small_flow):
    """timeout() lets an input pass; hangup() ends the call as caller_hangup."""
    call(small_flow).timeout().timeout().ends_with("completed").visited("bye")
    call(small_flow).hangup().ends_with("caller_hangup").hangs_up()


def test_only_phone_keys_can_be_pressed(small_flow):
    """press() refuses anything but 0-9 * #."""
    with pytest.raises(AssertionError, match="can only press"):
        call(small_flow).press("1a")


def test_a_broken_flow_is_reported_with_its_problems(tmp_path):
    """call() on a flow with errors shows them with file:line."""
    path = tmp_path / "helper_broken.yaml"
    path.write_text("steps:\n  a:\n    type: say\n    promt: hi\n")
    with pytest.raises(AssertionError, match=r"helper_broken.yaml:4:5"):
        call(path)


def test_coverage_counts_visited_steps(tmp_path):
    """Each call adds its steps to the session's coverage; unvisited steps are listed."""
    path = tmp_path / "helper_coverage.yaml"
    path.write_text(SMALL_FLOW)
    call(path).press("1").ends_with("completed")
    line = next(line for line in COVERAGE.report() if line.startswith("helper_coverage"))
    assert "3/5" in line and line.endswith("never: weather, agent")


def test_coverage_report_format():
    """One line per flow: visited/total, percent, never-visited steps in file order."""
    from ivr.flow import Flow, SourcePos, Step
    pos = SourcePos("x.yaml", 1, 1)
    flow = Flow("demo", "x.yaml", "v1", "a", {n: Step(n, "say", {}, pos) for n in ("a", "b", "c")})
    coverage = FlowCoverage()
    coverage.know(flow)
    coverage.record([{"step": "a"}, {"step": "c"}], "demo", {"demo": flow})
    assert coverage.report() == ["demo    2/3    66.7%  never: b"]


def _plugin_args(config) -> list[str]:
    """``-p ivr.pytest_plugin`` unless the ``pytest11`` entry point already loads it."""
    installed = config.pluginmanager.get_plugin("hotline_flows") is not None
    return [] if installed else ["-p", "ivr.pytest_plugin"]


def test_pytest_plugin_prints_flow_coverage(pytester, small_flow, pytestconfig):
    """``pytest --flow-coverage`` ends with a per-flow coverage summary."""
    pytester.makepyfile(test_line=textwrap.dedent(f"""
        from ivr.testing import call

        def test_news():
            call({str(small_flow)!r}).press("1").ends_with("completed")
    """))
    result = pytester.runpytest_subprocess(*_plugin_args(pytestconfig), "--flow-coverage")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*flow coverage*", "helper_small*3/5*never: weather, agent"])


def test_pytest_plugin_flows_dir_fixture(pytester, pytestconfig):
    """The ``flows_dir`` fixture points at <rootdir>/flows."""
    pytester.makepyfile(test_dir="def test_it(flows_dir, pytestconfig):\n"
                                 "    assert flows_dir == pytestconfig.rootpath / 'flows'\n")
    pytester.runpytest_subprocess(*_plugin_args(pytestconfig)).assert_outcomes(passed=1)
