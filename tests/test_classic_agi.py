"""Classic AGI (``hotline-agi``): the same driver over stdin/stdout, one process per call."""
import io
import os
import sys
from pathlib import Path

from agi_helpers import TRACES, ListSink, RawLine, ScriptedFactory, read_agi_log
from ivr.agisim import CallScript, run_classic
from ivr.classic_agi import run_call
from ivr.commands import Answer, CallerHangup, StreamFile

ROOT = Path(__file__).resolve().parent.parent


def recorded_classic():
    [recorded] = read_agi_log(TRACES / "classic_agi" / "classic-agi.log").values()
    env = "".join(line + "\n" for line in recorded.env_lines).encode()
    return recorded, env


def test_recorded_classic_call_replays_through_the_driver():
    """Fed the recorded env and replies, the script sends the recorded commands and records the call."""
    recorded, env = recorded_classic()
    replies = "".join(line + "\n" for e in recorded.exchanges for line in e.lines).encode()
    factory = ScriptedFactory({"classic": [RawLine(e.command) for e in recorded.exchanges]})
    stdout, sink = io.BytesIO(), ListSink()
    record = run_call(io.BytesIO(env + replies), stdout, factory, sink=sink, flow="classic",
                      args=["alpha", "beta"], fetch_linkedid=False)
    assert stdout.getvalue().decode().splitlines() == [e.command for e in recorded.exchanges]
    assert sink.records == [record]
    assert record["outcome"] == "completed" and record["agi_commands"] == 6
    assert record["uniqueid"] == "1795388608.5" and record["flow"] == "classic"
    assert factory.envs[0].args == ["alpha", "beta"]
    assert factory.sessions[0].results[2].endpos == 3520


def test_end_of_stdin_mid_command_is_a_caller_hangup():
    """Asterisk closing our stdin during a command ends the call with a hangup record."""
    _, env = recorded_classic()
    factory = ScriptedFactory({"main": [Answer(), StreamFile("long")]})
    record = run_call(io.BytesIO(env + b"200 result=0\n"), io.BytesIO(), factory, flow="main",
                      fetch_linkedid=False)
    assert record["outcome"] == "caller_hangup"
    assert isinstance(factory.sessions[0].results[1], CallerHangup)


def test_undecodable_caller_name_does_not_break_the_environment():
    """Odd bytes in the env are replaced, not fatal (pyst2 alone would raise)."""
    factory = ScriptedFactory({"main": []})
    record = run_call(io.BytesIO(b"agi_request: hotline-agi\nagi_calleridname: Jos\xe9\n\n"),
                      io.BytesIO(), factory, flow="main", fetch_linkedid=False)
    assert record["caller_id_name"] == "Jos\ufffd"


def agi_process(*args, flows_dir):
    env = dict(os.environ, HOTLINE_FLOWS_DIR=str(flows_dir), PYTHONPATH=str(ROOT))
    env.pop("HOTLINE_DB_URL", None)
    return [sys.executable, "-m", "ivr.classic_agi", *args], env


def test_unknown_flow_in_a_real_process_goes_to_the_operator(tmp_path):
    """Run as Asterisk would: unknown flow -> HOTLINE_ERROR + Queue(operator), exit 0, stdout closed."""
    argv, env = agi_process("nosuchflow", flows_dir=tmp_path)
    result = run_classic(argv, CallScript(network=False, request="hotline-agi"), env=env, timeout=30)
    assert not result.timed_out and result.returncode == 0, result.stderr
    assert result.commands == [
        "GET VARIABLE CHANNEL(linkedid)", result.commands[1],
        'SET VARIABLE HOTLINE_ERROR "unknown flow nosuchflow"', 'EXEC Queue "operator,t"']
    assert result.commands[1].startswith("SET VARIABLE HOTLINE_SESSION ")
    assert result.closed_by_server


def test_real_flow_runs_in_a_classic_agi_process(tmp_path):
    """hotline-agi runs a YAML flow through the engine over stdin/stdout and exits."""
    from agi_helpers import write_tiny_flow
    argv, env = agi_process("tiny", flows_dir=write_tiny_flow(tmp_path))
    result = run_classic(argv, CallScript(network=False, request="hotline-agi", keys=["2"]),
                         env=env, timeout=30)
    assert not result.timed_out and result.returncode == 0, result.stderr
    assert result.commands[:2] == ["GET VARIABLE CHANNEL(linkedid)", "ANSWER"]
    assert result.commands[-1] == "HANGUP"
    assert result.variables["HOTLINE_OUTCOME"] == "completed"
    assert "outcome=completed" in result.stderr
