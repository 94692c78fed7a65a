"""Loading flow files: positions of every key, defaults, normalised values, and errors never tracebacks."""
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows_helpers import FIXTURES, TEST_TYPES
from ivr.flow import FlowError, SourcePos
from ivr.loader import check_flow_text, load_flow, parse_flow_text


def parse(text, filename="flow.yaml", **kwargs):
    return parse_flow_text(text, filename, registry=TEST_TYPES, flows_dir=FIXTURES,
                           known_flows=("billing",), **kwargs)


def problems(text, filename="flow.yaml"):
    _, found = check_flow_text(text, filename, registry=TEST_TYPES, flows_dir=FIXTURES,
                               known_flows=("billing",))
    return [str(p) for p in found]


MENU = """\
description: Test
steps:
  welcome:
    type: say
    prompt: Hello
    next: menu
  menu:
    type: menu
    prompt: Choose
    choices:
      1: welcome
      "*": menu
"""


def test_load_flow_reads_a_good_file():
    """load_flow returns the flow with its steps in file order, its file-level keys and defaults."""
    flow = load_flow(FIXTURES / "good" / "main.yaml", registry=TEST_TYPES)
    assert flow.name == "main"
    assert list(flow.steps)[:3] == ["welcome", "main_menu", "billing"]
    assert (flow.start, flow.on_error, flow.operator_queue) == ("welcome", "sorry", "operator")
    assert flow.variables == {"attempts": 0}
    assert flow.description == "Inbound customer line"


def test_every_step_and_key_has_its_position():
    """Step.pos is the step name's line:col and key_pos each key's, 1-based."""
    flow = parse(MENU)
    menu = flow.steps["menu"]
    assert menu.pos == SourcePos("flow.yaml", 7, 3)
    assert menu.where("prompt") == SourcePos("flow.yaml", 9, 5)
    assert menu.where("choices.1") == SourcePos("flow.yaml", 11, 7)
    assert menu.value_pos["choices.1"] == SourcePos("flow.yaml", 11, 10)


def test_defaults_are_applied_only_when_absent():
    """Keys left out get their declared default; keys written keep their value."""
    flow = parse(MENU.replace("    prompt: Choose\n", "    prompt: Choose\n    retries: 1\n"))
    params = flow.steps["menu"].params
    assert params["timeout"] == 5
    assert params["retries"] == 1
    assert params["invalid_prompt"] == {"sound": "invalid"}


def test_mutable_defaults_are_not_shared():
    """Each step gets its own copy of a mapping default."""
    flow = parse(MENU.replace('"*": menu', '"*": menu2')
                 + "  menu2:\n    type: menu\n    prompt: x\n    choices: {1: welcome}\n")
    first, second = flow.steps["menu"].params, flow.steps["menu2"].params
    assert first["invalid_prompt"] == second["invalid_prompt"]
    assert first["invalid_prompt"] is not second["invalid_prompt"]


def test_digit_target_keys_are_strings():
    """`1:` (an int in YAML) and `"*":` both become string keys."""
    assert parse(MENU).steps["menu"].params["choices"] == {"1": "welcome", "*": "menu"}


def test_text_kinds_keep_the_characters_written():
    """A text-kind value written as a number keeps its characters (leading zeros included)."""
    text = ("steps:\n  c:\n    type: collect\n    var: pin\n    prompt: 0123\n    terminator: 0\n"
            "    next: c\n")
    params = parse_flow_text(text, "flow.yaml", registry=TEST_TYPES, flows_dir=FIXTURES).steps["c"].params
    assert params["prompt"] == "0123"
    assert params["terminator"] == "0"


def test_dates_stay_text():
    """A YAML date (holidays) is kept as the text written, not a datetime.date."""
    flow = parse("variables: {holiday: 2026-12-25}\nsteps:\n  a:\n    type: hangup\n")
    assert flow.variables == {"holiday": "2026-12-25"}


def test_expression_slots_are_text():
    """`if: true` and set values like `0` are kept as expression text."""
    text = ("steps:\n  b:\n    type: branch\n    conditions: [{if: true, goto: s}]\n    else: s\n"
            "  s:\n    type: set\n    vars: {count: 0, done: false}\n")
    flow = parse(text)
    assert flow.steps["b"].params["conditions"] == [{"if": "true", "goto": "s"}]
    assert flow.steps["s"].params["vars"] == {"count": "0", "done": "false"}


def test_version_is_a_hash_of_the_file_bytes():
    """Flow.version is the first 12 hex digits of the sha256 of the file."""
    path = FIXTURES / "good" / "billing.yaml"
    flow = load_flow(path, registry=TEST_TYPES)
    assert flow.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_start_defaults_to_the_first_step_and_name_to_the_file_stem():
    """Without `start:` the first step starts; without `flow:` the file name names the flow."""
    flow = parse(MENU, filename="flows/sales.yaml")
    assert (flow.name, flow.start) == ("sales", "welcome")


def test_load_flow_raises_with_every_problem():
    """FlowError carries all problems, each printable as file:line:col: message."""
    with pytest.raises(FlowError) as info:
        parse("steps:\n  a:\n    type: sya\n  b:\n    type: hangup\n    colour: red\n")
    assert [str(p) for p in info.value.problems] == [
        "flow.yaml:3:11: step 'a': unknown step type 'sya' (did you mean 'say'?)",
        "flow.yaml:4:3: step 'b' is unreachable: no step leads to it from the start step 'a'; "
        "reference it (next, choices, ...) or delete it",
        "flow.yaml:6:5: step 'b': unknown key 'colour'"]


def test_unknown_top_level_key_suggests_the_right_one():
    """An unknown file-level key is an error with did-you-mean."""
    assert problems("strat: a\nsteps:\n  a:\n    type: hangup\n") == [
        "flow.yaml:1:1: unknown top-level key 'strat' (did you mean 'start'?)"]


def test_duplicate_keys_report_both_positions():
    """A key written twice in a step is reported at the second with the first's position."""
    assert problems("steps:\n  a:\n    type: hangup\n    prompt: Bye\n    prompt: Ciao\n") == [
        "flow.yaml:5:5: step 'a': key 'prompt' appears twice (first at line 4:5)"]


def test_duplicate_step_names_are_reported():
    """Two steps with the same name: the second is reported."""
    assert problems("steps:\n  a:\n    type: hangup\n  a:\n    type: hangup\n") == [
        "flow.yaml:4:3: step 'a' is defined twice (first at line 2:3)"]


def test_invalid_step_name():
    """Step names must be identifiers."""
    assert problems("steps:\n  2nd-step:\n    type: hangup\n") == [
        "flow.yaml:2:3: step name '2nd-step' is not valid: use letters, digits and _, not starting with a digit"]


@pytest.mark.parametrize("text, expected", [
    ("steps: [\n", "flow.yaml:2:1: YAML syntax error:"),
    ("a: 1\n\tb: 2\n", "flow.yaml:2:1: YAML syntax error: found character '\\t' that cannot start any token"),
    ("steps:\n  a: {type: hangup}\n---\nx: 1\n", "flow.yaml:3:1: YAML syntax error: but found another document"),
    ("", "flow.yaml:1:1: empty flow file"),
    ("- a\n- b\n", "flow.yaml:1:1: a flow file must be a mapping"),
    ("description: x\n", "flow.yaml:1:1: flow has no 'steps:'"),
    ("steps: []\n", "flow.yaml:1:8: 'steps' must be a mapping"),
    ("steps:\n  a: say\n", "flow.yaml:2:6: step 'a': a step must be a mapping with a 'type'"),
    ("steps:\n  a:\n    prompt: x\n", "flow.yaml:2:3: step 'a': no 'type'"),
    ("steps:\n  a:\n    type:\n", "flow.yaml:3:5: step 'a': 'type' must be a step type name"),
    ("steps:\n  a: {type: hangup}\nmax_steps: lots\n", "flow.yaml:3:12: 'max_steps' must be a whole number"),
    ("variables: {x: !!python/object:os.system ls}\nsteps:\n  a: {type: hangup}\n",
     "flow.yaml:1:16: cannot read value"),
])
def test_bad_files_are_problems_not_tracebacks(text, expected):
    """Every kind of broken file gives a located problem, never an exception."""
    found = problems(text)
    assert any(line.startswith(expected) for line in found), found


def test_non_utf8_file_is_a_problem():
    """Bytes that are not UTF-8 are reported at their line and column."""
    assert problems(b"steps:\n  a: \xff\n") == ["flow.yaml:2:6: file is not UTF-8 text"]


def test_alias_bomb_is_refused():
    """Aliases that expand exponentially are refused instead of eating memory."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    text = "variables:\n" + "\n".join("  " + line for line in lines) + "\nsteps:\n  a: {type: hangup}\n"
    assert problems(text) == ["flow.yaml:1:1: file is too complex (too deep, or aliases that expand too far)"]


def test_recursive_alias_is_refused():
    """A self-referencing alias is refused, not followed forever."""
    assert problems("variables: {a: &x [*x]}\nsteps:\n  a: {type: hangup}\n") == [
        "flow.yaml:1:1: file is too complex (too deep, or aliases that expand too far)"]


def test_missing_file_is_a_flow_error(tmp_path):
    """load_flow on a missing file raises FlowError with one readable problem."""
    with pytest.raises(FlowError) as info:
        load_flow(tmp_path / "nope.yaml", registry=TEST_TYPES)
    assert str(info.value).endswith("nope.yaml:1:1: cannot read file: No such file or directory")


def test_flow_name_differing_from_file_is_a_warning():
    """`flow:` that differs from the file name only warns; load still succeeds."""
    flow = parse("flow: other\nsteps:\n  a: {type: hangup}\n", filename="main.yaml")
    assert [str(w) for w in flow.warnings] == [
        "main.yaml:1:7: warning: flow name 'other' differs from the file name 'main': "
        "callers and subflows use the file name"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abs:tep {}[]-'\"\n &*!#12yx|>")), max_size=120))
def test_arbitrary_text_never_raises(text):
    """Whatever the bytes, checking a file returns problems; it never raises."""
    flow, found = check_flow_text(text, "fuzz.yaml", registry=TEST_TYPES, flows_dir=FIXTURES)
    assert flow is not None or found


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data):
    """Random bytes (not UTF-8, control characters) are problems, not exceptions."""
    flow, found = check_flow_text(data, "fuzz.yaml", registry=TEST_TYPES, flows_dir=FIXTURES)
    assert flow is not None or found


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 30) | st.floats(allow_nan=False, width=16)
    | st.sampled_from(["a", "b", "menu", "${x}", "${", "1", "#", "x > ", "en", "file", "", "welcome"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["1", "en", "zh", "file", "text", "sound", "if", "goto", "x"]),
                      inner, max_size=3),
    max_leaves=8)
_KEYS = sorted({key for step_type in TEST_TYPES.values() for key in step_type.keys} | {"log", "bogus"})
_STEP = st.fixed_dictionaries({"type": st.sampled_from(sorted(TEST_TYPES) + ["nope"])},
                              optional={key: _JSON for key in _KEYS})


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "menu", "welcome"]), _STEP, min_size=1, max_size=4),
       st.dictionaries(st.sampled_from(["start", "on_error", "variables", "max_steps", "language"]),
                       _JSON, max_size=2))
def test_any_shaped_flow_never_raises(steps, top):
    """Well-formed YAML with values of any shape in any key gives problems, never an exception."""
    import json
    text = json.dumps({**top, "steps": steps})
    flow, found = check_flow_text(text, "fuzz.yaml", registry=TEST_TYPES, flows_dir=FIXTURES)
    assert flow is not None
