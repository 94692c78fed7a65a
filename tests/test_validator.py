"""The validator: each kind of mistake in a flow file is reported once, at its file:line:col.

Fixtures in tests/flow_fixtures/ hold one mistake each; the tests compare the exact lines
`hotline flows check` would print for them.
"""
import shutil

import pytest

from flows_helpers import FIXTURES, TEST_TYPES
from ivr.flow import Flow, Key, SourcePos, Step, StepType
from ivr.loader import check_flow_text
from ivr.validator import validate_flow


@pytest.fixture(autouse=True)
def _from_repo_root(monkeypatch):
    """Paths in messages are shown relative to the current directory: make it the repo root."""
    monkeypatch.chdir(FIXTURES.parent.parent)


def problem_lines(name, known_flows=("billing",), flows_dir=FIXTURES):
    """The problems of fixture `name` as printed lines, with the bare file name as path."""
    _, problems = check_flow_text((FIXTURES / name).read_bytes(), name, registry=TEST_TYPES,
                                  flows_dir=flows_dir, known_flows=known_flows)
    return [str(p) for p in problems]


def check_text(text, filename="flow.yaml", flows_dir=FIXTURES, known_flows=("billing",)):
    _, problems = check_flow_text(text, filename, registry=TEST_TYPES, flows_dir=flows_dir,
                                  known_flows=known_flows)
    return [str(p) for p in problems]


def test_good_flow_has_no_problems():
    """A flow using every key kind correctly passes with no error and no warning."""
    assert problem_lines("good/main.yaml", flows_dir=FIXTURES / "good") == []


def test_malformed_yaml():
    """A YAML syntax error is one problem at the place the parser gave up, not a traceback."""
    assert problem_lines("malformed.yaml") == [
        "malformed.yaml:7:8: YAML syntax error: expected ',' or '}', but got ':' "
        "(while parsing a flow mapping started at line 6:14)"]


def test_unknown_step_type():
    """An unknown step type points at the type's value and suggests the closest type."""
    assert problem_lines("unknown_type.yaml") == [
        "unknown_type.yaml:8:11: step 'bye': unknown step type 'hangpu' (did you mean 'hangup'?)"]


def test_unknown_key():
    """An unknown key points at the key and suggests the closest known key."""
    assert problem_lines("unknown_key.yaml") == [
        "unknown_key.yaml:10:5: step 'menu': unknown key 'timout' (did you mean 'timeout'?)"]


def test_missing_required_key():
    """A step without one of its required keys is reported at the step's name."""
    assert problem_lines("missing_required.yaml") == [
        "missing_required.yaml:3:3: step 'menu': missing required key 'choices'"]


def test_required_key_left_empty_is_missing():
    """`prompt:` with nothing after it counts as missing, reported at the key."""
    assert check_text("steps:\n  m:\n    type: menu\n    prompt:\n    choices: {1: m}\n") == [
        "flow.yaml:4:5: step 'm': missing required key 'prompt'"]


def test_bad_target():
    """A choice leading to a step that does not exist is reported at the value, with a suggestion."""
    assert problem_lines("bad_target.yaml") == [
        "bad_target.yaml:7:10: step 'main_menu': 'choices.1' goes to step 'sales', "
        "which does not exist (did you mean 'sale'?)"]


def test_unreachable_step():
    """A step no path from start reaches is an error that says how to fix it."""
    assert problem_lines("unreachable.yaml") == [
        "unreachable.yaml:9:3: step 'old_promo' is unreachable: no step leads to it from the start "
        "step 'welcome'; reference it (next, choices, ...) or delete it"]


def test_infinite_loop_without_input():
    """A cycle of steps none of which waits for the caller is reported with its path."""
    assert problem_lines("infinite_loop.yaml") == [
        "infinite_loop.yaml:3:3: infinite loop with no caller input: start_over -> again -> start_over"]


def test_missing_prompt_file():
    """A {file: name} prompt must exist under <flows dir>/sounds/ with a known extension."""
    assert problem_lines("missing_prompt.yaml") == [
        "missing_prompt.yaml:5:20: step 'welcome': prompt file 'no-such-recording' not found: "
        "no tests/flow_fixtures/sounds/no-such-recording.{wav,gsm,ulaw,alaw,sln,g722}"]


def test_undefined_variable():
    """A ${var} nobody sets is reported at the column of its `${` inside the text."""
    assert problem_lines("undefined_variable.yaml") == [
        "undefined_variable.yaml:5:51: step 'welcome': variable 'balanse' is never set: not built in, "
        "not in 'variables:', and no step writes it"]


def test_duplicate_digit():
    """`1:` and `"1":` are the same phone key; the second is reported with the first's position."""
    assert problem_lines("duplicate_digit.yaml") == [
        "duplicate_digit.yaml:9:7: step 'menu': digit '1' appears twice in 'choices' "
        "(first at line 7:7; 1: and \"1\": are the same key)"]


def test_missing_subflow():
    """A subflow must name a flow file in the same directory."""
    assert problem_lines("missing_subflow.yaml", known_flows=("billing", "main")) == [
        "missing_subflow.yaml:5:11: step 'billing': flow 'biling' not found (no tests/flow_fixtures/biling.yaml) "
        "(did you mean 'billing'?)"]


def test_bad_expression_points_inside_the_expression():
    """An expression error is reported at the column inside the expression where it fails."""
    assert problem_lines("bad_expression.yaml") == [
        "bad_expression.yaml:6:30: step 'check': bad expression in 'conditions.0.if': "
        "unexpected end of expression: a value is missing"]


def test_quoted_expression_column_counts_the_quote():
    """In a quoted scalar the reported column skips the opening quote."""
    lines = check_text('steps:\n  s:\n    type: set\n    vars: {x: "1 +* 2"}\n')
    assert lines == ["flow.yaml:4:19: step 's': bad expression in 'vars.x': expected a value, found '*'"]


def test_block_scalar_expression_names_the_column_in_the_message():
    """When the expression spans lines, the message gives the column within the expression."""
    text = "steps:\n  s:\n    type: set\n    vars:\n      x: >-\n        1 +\n        * 2\n"
    assert check_text(text) == [
        "flow.yaml:5:10: step 's': bad expression in 'vars.x': expected a value, found '*' "
        "(column 5 of the expression)"]


def test_all_problems_are_reported_together():
    """Several mistakes in one file are all reported, in file order."""
    text = ("steps:\n  menu:\n    type: menu\n    prompt: Hi ${nobody}\n    timout: 3\n"
            "    choices: {1: menu, 2: gone}\n")
    assert check_text(text) == [
        "flow.yaml:4:16: step 'menu': variable 'nobody' is never set: not built in, not in "
        "'variables:', and no step writes it",
        "flow.yaml:5:5: step 'menu': unknown key 'timout' (did you mean 'timeout'?)",
        "flow.yaml:6:27: step 'menu': 'choices.2' goes to step 'gone', which does not exist"]


@pytest.mark.parametrize("line, expected", [
    ("    timeout: soon\n", "'timeout' must be a number (seconds), not 'soon'"),
    ("    retries: 2.5\n", "'retries' must be a whole number, not the number 2.5"),
    ("    retries: true\n", "'retries' must be a whole number, not true (yes/no)"),
    ("    on_timeout: [a]\n", "'on_timeout' must be the name of a step, not a list"),
    ("    choices: [menu]\n", "'choices' must be a mapping of phone key -> step name, not a list"),
])
def test_wrong_kinds(line, expected):
    """A value of the wrong kind says which kind was expected and what was found."""
    text = "steps:\n  menu:\n    type: menu\n    prompt: Hi\n" + line
    if "choices" not in line:
        text += "    choices: {1: menu}\n"
    lines = check_text(text)
    assert [x for x in lines if expected in x], lines
    assert lines[0].startswith("flow.yaml:5:")


def test_digit_key_must_be_a_phone_key():
    """A choice key that is not one of 0-9 * # is reported at the key."""
    lines = check_text("steps:\n  menu:\n    type: menu\n    prompt: Hi\n    choices:\n      12: menu\n")
    assert lines == ["flow.yaml:6:7: step 'menu': '12' in 'choices' is not a phone key: use one of 0-9 * #"]


def test_variables_written_anywhere_are_defined():
    """A variable written by any step (collect var, set vars, menu_choice) may be read anywhere."""
    text = ("steps:\n  ask:\n    type: collect\n    var: account\n    prompt: Account?\n    next: say\n"
            "  say:\n    type: say\n    prompt: You typed ${account} after ${menu_choice}, total ${total}\n"
            "    next: add\n"
            "  add:\n    type: set\n    vars: {total: len(account)}\n"
            "  unused:\n    type: menu\n    prompt: x\n    choices: {1: ask}\n")
    assert [x for x in check_text(text) if "never set" in x] == []


def test_builtin_and_arg_variables_are_defined():
    """Built-in variables and arg_* from the AGI request need no declaration; defined('x') is no read."""
    text = ("steps:\n  s:\n    type: branch\n    conditions:\n"
            "      - {if: \"defined('promo') and arg_lang == 'zh' and caller_id != ''\", goto: s}\n"
            "    else: s\n")
    assert [x for x in check_text(text) if "never set" in x] == []


def test_prompt_per_language_is_checked_recursively():
    """Each language of a per-language prompt is checked: its file, its text variables."""
    text = ("steps:\n  s:\n    type: say\n    prompt:\n      en: {file: missing-en}\n"
            "      zh: 你好 ${who}\n")
    lines = check_text(text)
    assert lines[0].startswith("flow.yaml:5:18: step 's': prompt file 'missing-en' not found")
    assert lines[1].startswith("flow.yaml:6:14: step 's': variable 'who' is never set")


def test_prompt_list_items_are_each_checked():
    """Each prompt of a list (played in order) is checked: files, variables, shapes."""
    text = ("steps:\n  s:\n    type: say\n    prompt:\n      - {en: 'Hi ${who}'}\n"
            "      - {file: gone}\n      - 42\n")
    lines = check_text(text)
    assert lines[0].startswith("flow.yaml:5:18: step 's': variable 'who' is never set")
    assert lines[1].startswith("flow.yaml:6:16: step 's': prompt file 'gone' not found")
    assert lines[2].startswith("flow.yaml:7:9: step 's': 'prompt.2' must be text to speak")


def test_prompts_nested_in_structured_keys_are_checked():
    """A prompt inside a list key (survey questions) is checked like any prompt."""
    text = ("steps:\n  s:\n    type: survey\n    questions:\n      - id: q1\n"
            "        prompt: {file: gone}\n      - {id: q2, prompt: 'Rate ${agnet}'}\n")
    lines = check_text(text)
    assert lines[0].startswith("flow.yaml:6:24: step 's': prompt file 'gone' not found")
    assert lines[1].startswith("flow.yaml:7:32: step 's': variable 'agnet' is never set")


def test_prompt_file_in_language_folder_counts(tmp_path):
    """A recording under sounds/<language>/ satisfies a per-language {file:} prompt."""
    (tmp_path / "sounds" / "zh").mkdir(parents=True)
    (tmp_path / "sounds" / "zh" / "hello.gsm").write_bytes(b"x")
    text = "steps:\n  s:\n    type: say\n    prompt: {zh: {file: hello}}\n"
    assert check_text(text, flows_dir=tmp_path) == []


def test_prompt_file_with_extension_is_refused():
    """Asterisk wants prompt names without extensions; the message gives the right name."""
    lines = check_text("steps:\n  s:\n    type: say\n    prompt: {file: welcome.wav}\n")
    assert lines == ["flow.yaml:4:20: step 's': 'prompt.file': write the prompt name without its "
                     "extension: 'welcome'"]


def test_subflow_found_on_disk_when_known_flows_not_given(tmp_path):
    """Without known_flows, a subflow is looked up as <flows_dir>/<name>.yaml."""
    shutil.copy(FIXTURES / "good" / "billing.yaml", tmp_path / "billing.yaml")
    text = "steps:\n  s:\n    type: subflow\n    flow: billing\n"
    assert check_text(text, flows_dir=tmp_path, known_flows=None) == []


def test_loop_through_an_input_step_is_fine():
    """A menu that returns to itself through silent steps is not an infinite loop."""
    text = ("steps:\n  menu:\n    type: menu\n    prompt: Hi\n    choices: {1: again}\n"
            "  again:\n    type: goto\n    target: menu\n")
    assert check_text(text) == []


def test_silent_loop_beside_an_input_step_is_still_found():
    """Two silent steps looping between themselves are found even when a menu is in the same cycle group."""
    text = ("steps:\n  menu:\n    type: menu\n    prompt: Hi\n    choices: {1: a}\n"
            "  a:\n    type: goto\n    target: b\n"
            "  b:\n    type: branch\n    conditions: [{if: 'tier == \"vip\"', goto: a}]\n    else: menu\n")
    assert check_text(text) == ["flow.yaml:6:3: infinite loop with no caller input: a -> b -> a"]


def test_self_loop_is_found():
    """A silent step that goes to itself is an infinite loop."""
    assert check_text("steps:\n  s:\n    type: goto\n    target: s\n") == [
        "flow.yaml:2:3: infinite loop with no caller input: s -> s"]


def test_file_level_start_and_on_error_must_exist():
    """start and on_error must name steps; each is reported at its value."""
    text = "start: welcom\non_error: oops\nsteps:\n  welcome:\n    type: hangup\n"
    assert check_text(text) == [
        "flow.yaml:1:8: start step 'welcom' does not exist (did you mean 'welcome'?)",
        "flow.yaml:2:11: on_error step 'oops' does not exist"]


def test_on_error_step_counts_as_reachable():
    """The on_error step is reachable even if no step names it."""
    text = "on_error: sorry\nsteps:\n  a:\n    type: hangup\n  sorry:\n    type: hangup\n"
    assert check_text(text) == []


def test_unknown_type_does_not_make_its_targets_unreachable():
    """Steps named by a step of unknown type are not also reported as unreachable."""
    text = ("steps:\n  a:\n    type: sya\n    next: b\n  b:\n    type: hangup\n")
    assert check_text(text) == ["flow.yaml:3:11: step 'a': unknown step type 'sya' (did you mean 'say'?)"]


def test_step_type_check_is_called():
    """A step type's own check() adds its problems."""
    text = ("steps:\n  c:\n    type: collect\n    var: pin\n    prompt: PIN?\n"
            "    min_digits: 8\n    max_digits: 4\n")
    assert check_text(text) == ["flow.yaml:6:5: step 'c': min_digits is above max_digits"]


def test_crashing_step_type_check_is_a_problem_not_a_traceback():
    """A step type whose check() raises on a clean step yields one problem naming the bug."""
    class Fragile(StepType):
        type_name = "fragile"

        def check(self, step):
            raise KeyError("boom")

    registry = {**TEST_TYPES, "fragile": Fragile()}
    _, problems = check_flow_text("steps:\n  f:\n    type: fragile\n", "flow.yaml", registry=registry,
                                  flows_dir=FIXTURES)
    assert [str(p) for p in problems] == [
        "flow.yaml:2:3: step 'f': could not be checked (KeyError: 'boom'); this is a bug in step type 'fragile'"]


def test_var_overwriting_a_builtin_is_a_warning():
    """Collecting into a built-in variable is allowed but warned about."""
    text = "steps:\n  c:\n    type: collect\n    var: caller_id\n    prompt: Number?\n"
    assert check_text(text) == [
        "flow.yaml:4:10: warning: step 'c': 'var' overwrites the built-in variable 'caller_id'"]


def test_validator_accepts_hand_built_flows():
    """A Flow built in code (no positions recorded) is validated with step positions as fallback."""
    pos = SourcePos("code", 1, 1)
    flow = Flow(name="code", path="code.yaml", version="0", start="a",
                steps={"a": Step("a", "say", {"prompt": "Hi ${nobody}", "next": "b"}, pos)})
    problems = [str(p) for p in validate_flow(flow, registry=TEST_TYPES, flows_dir=FIXTURES)]
    assert problems == [
        "code:1:1: step 'a': 'next' goes to step 'b', which does not exist",
        "code:1:1: step 'a': variable 'nobody' is never set: not built in, not in 'variables:', "
        "and no step writes it"]


def test_key_choices_are_enforced():
    """A key declared with choices refuses any other value, with a suggestion."""
    class Lookup(StepType):
        type_name = "lookup"
        keys = {"by": Key("str", choices=("account", "phone", "customer_id"))}

    registry = {**TEST_TYPES, "lookup": Lookup()}
    _, problems = check_flow_text("steps:\n  l:\n    type: lookup\n    by: phon\n", "flow.yaml",
                                  registry=registry, flows_dir=FIXTURES)
    assert [str(p) for p in problems] == [
        "flow.yaml:4:9: step 'l': 'by' must be one of account, phone, customer_id, not 'phon' "
        "(did you mean 'phone'?)"]
