"""Engine commands become exactly the AGI lines Asterisk 22 accepts (see the traces' agi.log)."""
import pytest

from ivr.commands import (
    AgiResult, Exec, GetData, Hangup, SayDigits, SayNumber, SetVariable, StreamFile,
    Verbose, WaitForDigit, quote_agi_arg,
)


@pytest.mark.parametrize("command,line", [
    (StreamFile("demo-instruct", "0123456789*#"), 'STREAM FILE demo-instruct "0123456789*#"'),
    (StreamFile("demo-congrats"), 'STREAM FILE demo-congrats ""'),
    (GetData("beep", 6000, 4), "GET DATA beep 6000 4"),
    (WaitForDigit(1500), "WAIT FOR DIGIT 1500"),
    (SayDigits("1234"), 'SAY DIGITS 1234 ""'),
    (SayNumber(42), 'SAY NUMBER 42 ""'),
    (SetVariable("IVR_STAGE", "greeting"), 'SET VARIABLE IVR_STAGE "greeting"'),
    (Verbose("Hotline IVR started", 1), 'VERBOSE "Hotline IVR started" 1'),
    (Exec("Queue", "support,t,,,300"), 'EXEC Queue "support,t,,,300"'),
    (Hangup(), "HANGUP"),
])
def test_commands_encode_as_recorded_from_asterisk(command, line):
    """Each command renders the line seen in the recorded AGI conversations."""
    assert command.agi_line() == line


def test_caller_supplied_text_cannot_inject_a_second_command():
    """Newlines in a value are flattened, quotes and backslashes escaped."""
    line = SetVariable("NAME", 'evil"\nHANGUP\\').agi_line()
    assert "\n" not in line
    assert line == 'SET VARIABLE NAME "evil\\" HANGUP\\\\"'


def test_plain_words_are_not_quoted():
    """Arguments without blanks or quotes go bare, as Asterisk's own examples do."""
    assert quote_agi_arg("beep") == "beep"
    assert quote_agi_arg("") == '""'


@pytest.mark.parametrize("result,expected", [
    (AgiResult(200, "49", endpos=14080), "1"),
    (AgiResult(200, "35"), "#"),
    (AgiResult(200, "0"), None),
    (AgiResult(200, "-1"), None),
])
def test_digit_of_a_stream_file_result(result, expected):
    """STREAM FILE / WAIT FOR DIGIT results carry the key as its ASCII code."""
    assert result.digit == expected


def test_get_data_digits_keep_their_leading_zero():
    """GET DATA's typed digits stay a string: 0123 is not 123."""
    assert AgiResult(200, "0123").result == "0123"


@pytest.mark.parametrize("result,dead", [
    (AgiResult(511, message="Command Not Permitted on a dead channel or intercept routine"), True),
    (AgiResult(200, "-1", endpos=24160), True),
    (AgiResult(200, "0"), False),
    (AgiResult(510, message="Invalid or unknown command"), False),
])
def test_dead_channel_results(result, dead):
    """511 and result=-1 both mean the caller is gone."""
    assert result.dead is dead
