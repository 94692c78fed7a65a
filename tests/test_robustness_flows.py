"""Robustness of the flow tools on files a careless admin (or a bad deploy) produces:
`hotline flows check|graph`, `hotline simulate` and the hot-reloading FlowLibrary.

The rule checked: a broken flow file is rejected with ``file:line:col: message`` lines
(or one clear line), never a Python traceback, with the documented exit status
(check: 0 clean, 1 problems, 2 unreadable path; simulate: 1 flow errors, 2 bad option),
and the last good version of a flow keeps serving. Tests marked ``xfail(strict=True)``
document a bug found by the robustness audit; they start passing when it is fixed.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import ivr.steps  # noqa: F401  (registers the real step types)
from hotline.cli import main
from ivr.library import FlowLibrary
from ivr.loader import check_flow_text

GOOD = "steps:\n  bye:\n    type: hangup\n    prompt: Goodbye.\n"
GOOD_V2 = "steps:\n  bye:\n    type: hangup\n    prompt: Goodbye again.\n"
PROBLEM_LINE = re.compile(r"^(?P<file>[^:\n]+\.yaml):(?P<line>\d+):(?P<col>\d+): \S")
DEEP = 1000   # far past the recursion limit with ruamel's several frames per level
SUMMARY = re.compile(r"^\d+ files?, \d+ errors?, \d+ warnings?$")


def _nested(depth: int) -> str:
    return ("steps:\n  a:\n    type: hangup\n    description: "
            + "[" * depth + "]" * depth + "\n")


def _alias_bomb() -> str:
    lines = ["variables:", "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\nsteps:\n  a:\n    type: hangup\n"


# name -> file content; every one must be refused with file:line:col lines and exit 1.
BROKEN_FILES: dict[str, str | bytes] = {
    "empty": "",
    "only_a_comment": "# nothing here\n",
    "list_at_top": "- welcome\n- goodbye\n",
    "scalar_at_top": "hello\n",
    "binary_garbage": bytes(range(256)) * 8,
    "utf16": GOOD.encode("utf-16"),
    "tabs": "steps:\n\ta:\n\t\ttype: hangup\n",
    "ten_megabytes": "# " + "x" * 10_000_000 + "\n" + GOOD,
    "alias_bomb": _alias_bomb(),
    "self_alias": "steps:\n  a: &x\n    type: hangup\n    description: *x\n",
    "python_tag": "steps:\n  a:\n    type: !!python/object:os.system hangup\n",
    "merge_key": "base: &b {type: hangup}\nsteps:\n  a:\n    <<: *b\n",
    "two_documents": GOOD + "---\n" + GOOD,
    "steps_is_a_list": "steps:\n  - a\n",
    "steps_is_empty": "steps:\n",
    "unicode_step_name": "steps:\n  欢迎:\n    type: hangup\n",
    "next_is_itself": "steps:\n  a:\n    type: say\n    prompt: hi\n    next: a\n",
    "goto_itself": "steps:\n  g:\n    type: goto\n    target: g\n",
    "negative_timeout": ("steps:\n  m:\n    type: menu\n    prompt: hi\n    choices: {1: b}\n"
                         "    timeout: -5\n  b:\n    type: hangup\n"),
    "max_digits_zero": ("steps:\n  c:\n    type: collect\n    var: x\n    prompt: hi\n"
                        "    max_digits: 0\n    next: b\n  b:\n    type: hangup\n"),
    "menu_without_choices": "steps:\n  m:\n    type: menu\n    prompt: hi\n    choices: {}\n",
    "start_missing": "start: nowhere\nsteps:\n  a:\n    type: hangup\n",
    "type_is_a_list": "steps:\n  g:\n    type: [goto]\n",
    "duplicate_step": "steps:\n  a:\n    type: hangup\n  a:\n    type: hangup\n",
    "prompt_path_traversal": "steps:\n  s:\n    type: say\n    prompt: {file: '/etc/passwd'}\n",
    "subflow_path_traversal": "steps:\n  s:\n    type: subflow\n    flow: '../etc/passwd'\n",
    "dial_option_injection": "steps:\n  t:\n    type: transfer\n    destination: 'PJSIP/1001,,G(x)'\n",
}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / f"{name}.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def _assert_no_traceback(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- flows check

@pytest.mark.parametrize("name", sorted(BROKEN_FILES))
def test_check_refuses_a_broken_file_with_file_line_col(in_tmp, name):
    """Each nasty file gives only file:line:col problem lines and the summary, exit 1."""
    _write(in_tmp, name, BROKEN_FILES[name])
    result = _invoke("flows", "check", f"{name}.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert SUMMARY.match(lines[-1]), lines[-1]
    assert lines[:-1], "an error was counted but not printed"
    for line in lines[:-1]:
        match = PROBLEM_LINE.match(line)
        assert match and match["file"] == f"{name}.yaml", line


def test_check_accepts_a_step_named_like_a_step_type(in_tmp):
    """A step called `hangup` of type hangup is legal: names and types do not clash."""
    _write(in_tmp, "named", "steps:\n  hangup:\n    type: hangup\n")
    result = _invoke("flows", "check", "named.yaml")
    assert (result.exit_code, result.output) == (0, "1 file, 0 errors, 0 warnings\n")


def test_check_accepts_a_byte_order_mark_and_crlf(in_tmp):
    """Files saved by Windows editors (BOM, CRLF) are fine."""
    _write(in_tmp, "windows", ("\ufeff" + GOOD).replace("\n", "\r\n"))
    result = _invoke("flows", "check", "windows.yaml")
    assert (result.exit_code, result.output) == (0, "1 file, 0 errors, 0 warnings\n")


def test_check_of_a_missing_path_is_one_clear_line_and_exit_2(in_tmp):
    """A path that does not exist: one line naming it, exit 2."""
    result = _invoke("flows", "check", "nowhere.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 2
    assert "nowhere.yaml: no such file or directory" in result.output


def test_check_of_a_directory_without_yaml_is_one_clear_line_and_exit_2(in_tmp):
    """An empty flows directory is reported, exit 2."""
    (in_tmp / "flows").mkdir()
    (in_tmp / "flows" / "notes.txt").write_text("not a flow")
    result = _invoke("flows", "check", "flows")
    _assert_no_traceback(result)
    assert result.exit_code == 2
    assert "flows: no .yaml flow files in this directory" in result.output


def test_check_of_an_unreadable_file_is_a_problem_line(in_tmp, monkeypatch):
    """A file that cannot be read (chmod 000; faked, since tests may run as root) is
    one file:1:1 problem, exit 1."""
    _write(in_tmp, "secret", GOOD)
    real_read_bytes = Path.read_bytes

    def refuse(self):
        if self.name == "secret.yaml":
            raise PermissionError(13, "Permission denied")
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    result = _invoke("flows", "check", "secret.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == "secret.yaml:1:1: cannot read file: Permission denied"


def test_check_refuses_deeply_nested_yaml_without_a_traceback(in_tmp):
    """`[[[[...]]]]` 1000 deep is 'too complex' (like the alias bomb), not a RecursionError."""
    _write(in_tmp, "deep", _nested(DEEP))
    result = _invoke("flows", "check", "deep.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 1
    assert PROBLEM_LINE.match(result.output.splitlines()[0])


def test_moderately_nested_yaml_is_refused_as_too_complex():
    """100 levels of nesting is caught by the loader's own depth limit."""
    _, problems = check_flow_text(_nested(100), "deep.yaml")
    assert any("too complex" in p.message for p in problems)


@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_check_refuses_a_timeout_that_is_not_a_finite_number(value):
    """`timeout: .nan` passes the kind check (a float) but can never be waited for."""
    text = (f"steps:\n  m:\n    type: menu\n    prompt: hi\n    choices: {{1: b}}\n"
            f"    timeout: {value}\n  b:\n    type: hangup\n")
    _, problems = check_flow_text(text, "m.yaml")
    assert any(p.severity == "error" and p.pos.line == 6 for p in problems), problems


def test_check_refuses_an_absurd_number_of_retries():
    """Retries are not counted by max_steps, so the validator must bound them."""
    text = ("steps:\n  m:\n    type: menu\n    prompt: hi\n    choices: {1: b}\n"
            "    retries: 100000000000000000000000\n  b:\n    type: hangup\n")
    _, problems = check_flow_text(text, "m.yaml")
    assert any(p.severity == "error" and "retries" in p.message for p in problems), problems


def test_check_refuses_a_subflow_cycle_that_never_waits(in_tmp):
    """a calls b calls a, neither reads a key: the same 'infinite loop' as inside one flow."""
    (in_tmp / "flows").mkdir()
    _write(in_tmp / "flows", "a", "steps:\n  go:\n    type: subflow\n    flow: b\n")
    _write(in_tmp / "flows", "b", "steps:\n  back:\n    type: subflow\n    flow: a\n")
    result = _invoke("flows", "check", "flows")
    assert result.exit_code == 1, result.output


def test_check_refuses_a_flow_calling_itself_before_any_input(in_tmp):
    """A flow whose first step is a subflow call to itself: the chain is in the message."""
    (in_tmp / "flows").mkdir()
    _write(in_tmp / "flows", "loop", "steps:\n  again:\n    type: subflow\n    flow: loop\n")
    result = _invoke("flows", "check", "flows")
    assert result.exit_code == 1, result.output
    assert "subflow loop with no caller input: loop -> loop" in result.output


def test_check_names_the_chain_of_a_subflow_cycle(in_tmp):
    """a -> b -> c -> a, each a silent call: each file names its own chain."""
    (in_tmp / "flows").mkdir()
    for name, callee in (("a", "b"), ("b", "c"), ("c", "a")):
        _write(in_tmp / "flows", name, f"steps:\n  go:\n    type: subflow\n    flow: {callee}\n")
    result = _invoke("flows", "check", "flows")
    assert result.exit_code == 1, result.output
    assert "flows/a.yaml:4:11: step 'go': subflow loop with no caller input: a -> b -> c -> a" in result.output


def test_check_accepts_a_subflow_cycle_through_a_menu(in_tmp):
    """main -> billing -> (caller presses 9) -> main waits for the caller each time round:
    not an infinite loop, so not an error (the run-time nesting limit still applies)."""
    (in_tmp / "flows").mkdir()
    _write(in_tmp / "flows", "main", "steps:\n  go:\n    type: subflow\n    flow: billing\n")
    _write(in_tmp / "flows", "billing", "steps:\n  m:\n    type: menu\n    prompt: hi\n"
                                        "    choices: {9: back}\n  back:\n    type: subflow\n"
                                        "    flow: main\n")
    result = _invoke("flows", "check", "flows")
    assert (result.exit_code, result.output) == (0, "2 files, 0 errors, 0 warnings\n")


def test_a_subflow_cycle_is_stopped_at_run_time(in_tmp):
    """A self-calling subflow the check lets through (the caller presses a key each time
    round) ends in the operator fallback once nested too deep, not a crash."""
    (in_tmp / "flows").mkdir()
    _write(in_tmp / "flows", "loop", "steps:\n  ask:\n    type: menu\n    prompt: again?\n"
                                     "    choices: {1: again}\n  again:\n    type: subflow\n"
                                     "    flow: loop\n")
    result = _invoke("simulate", "flows/loop.yaml", "--digits", ",".join(["1"] * 40))
    _assert_no_traceback(result)
    assert result.exit_code == 0
    assert "outcome: error" in result.output
    assert "nested more than" in result.output


# ---------------------------------------------------------------- flows graph

@pytest.mark.parametrize("name", ["empty", "binary_garbage", "list_at_top", "alias_bomb", "tabs"])
def test_graph_of_an_unreadable_flow_prints_problems_and_exits_1(in_tmp, name):
    """graph on a file that cannot be read as a flow: problems on stderr, no DOT, exit 1."""
    _write(in_tmp, name, BROKEN_FILES[name])
    result = _invoke("flows", "graph", f"{name}.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert all(PROBLEM_LINE.match(line) for line in result.stderr.splitlines())


def test_graph_of_a_missing_file_exits_2(in_tmp):
    """graph of a path that is not a file: one line, exit 2."""
    result = _invoke("flows", "graph", "nowhere.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 2
    assert "nowhere.yaml: no such file" in result.stderr


def test_graph_escapes_quotes_in_a_bad_step_name(in_tmp):
    """A step name with a quote is an error, and the DOT still drawn stays one valid string."""
    _write(in_tmp, "quoted", "steps:\n  'a\"b':\n    type: hangup\n")
    result = _invoke("flows", "graph", "quoted.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 1
    assert '"a\\"b"' in result.stdout


def test_graph_of_deeply_nested_yaml_has_no_traceback(in_tmp):
    """Same file as the check test: problems and exit 1."""
    _write(in_tmp, "deep", _nested(DEEP))
    result = _invoke("flows", "graph", "deep.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 1


# ---------------------------------------------------------------- simulate

def test_simulate_a_broken_flow_lists_its_problems_and_exits_1(in_tmp):
    """simulate refuses a flow with errors: file:line:col lines on stderr, exit 1."""
    _write(in_tmp, "broken", BROKEN_FILES["start_missing"])
    result = _invoke("simulate", "broken.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 1
    assert "broken.yaml:1:8: start step 'nowhere' does not exist" in result.stderr


@pytest.mark.parametrize("name", ["empty", "binary_garbage", "alias_bomb"])
def test_simulate_an_unreadable_flow_exits_1(in_tmp, name):
    """simulate on garbage: the reason with file:line, exit 1."""
    _write(in_tmp, name, BROKEN_FILES[name])
    result = _invoke("simulate", f"{name}.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 1
    assert f"{name}.yaml:" in result.stderr


def test_simulate_a_good_flow_next_to_a_broken_one(in_tmp):
    """A broken sibling file does not stop simulating a good flow of the same directory."""
    _write(in_tmp, "good", GOOD)
    _write(in_tmp, "broken", BROKEN_FILES["binary_garbage"])
    result = _invoke("simulate", "good.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 0
    assert "outcome: completed" in result.output


def test_simulate_a_good_flow_next_to_a_deeply_nested_one(in_tmp):
    """Same as above with the sibling nested 1000 deep."""
    _write(in_tmp, "good", GOOD)
    _write(in_tmp, "deep", _nested(DEEP))
    result = _invoke("simulate", "good.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 0


@pytest.mark.parametrize("args", [["--digits", "1,x"], ["--now", "nan"], ["--now", "1e300"],
                                  ["--queue-result", "maybe"]])
def test_simulate_bad_options_exit_2(in_tmp, args):
    """A bad option value is a usage error (exit 2) naming the option."""
    _write(in_tmp, "good", GOOD)
    result = _invoke("simulate", "good.yaml", *args)
    _assert_no_traceback(result)
    assert result.exit_code == 2
    assert args[0] in result.output


def test_simulate_customers_file_that_is_not_a_list_exits_2(in_tmp):
    """--customers with a mapping instead of a list: usage error, exit 2."""
    _write(in_tmp, "good", GOOD)
    (in_tmp / "customers.yaml").write_text("account: 1\n")
    result = _invoke("simulate", "good.yaml", "--customers", "customers.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 2


def test_simulate_customers_file_with_bad_yaml_exits_2(in_tmp):
    """--customers that is not valid YAML: usage error, exit 2, no traceback."""
    _write(in_tmp, "good", GOOD)
    (in_tmp / "customers.yaml").write_text("a: [\n")
    result = _invoke("simulate", "good.yaml", "--customers", "customers.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 2


def test_simulate_with_a_bad_database_url_exits_2(in_tmp):
    """--db nonsense://x: usage error, exit 2."""
    _write(in_tmp, "good", GOOD)
    result = _invoke("simulate", "good.yaml", "--db", "nonsense://x")
    _assert_no_traceback(result)
    assert result.exit_code == 2


# ---------------------------------------------------------------- hot reload: last good version serves

def _library(directory: Path) -> FlowLibrary:
    return FlowLibrary(directory, log=logging.getLogger("test.robustness"))


def _touch_later(path: Path, content: str | bytes) -> None:
    """Rewrite ``path`` and make sure its (mtime, size) stamp differs from before."""
    import os
    before = path.stat().st_mtime_ns
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    os.utime(path, ns=(before + 10_000_000_000, before + 10_000_000_000))


@pytest.mark.parametrize("name", ["empty", "binary_garbage", "ten_megabytes", "alias_bomb",
                                  "list_at_top", "start_missing", "tabs"])
def test_a_broken_edit_keeps_the_last_good_version_serving(tmp_path, name):
    """Overwriting a good flow with garbage: refused with file:line, the old version serves."""
    path = _write(tmp_path, "main", GOOD)
    library = _library(tmp_path)
    version = library.get("main").version
    _touch_later(path, BROKEN_FILES[name])
    problems = library.reload()
    assert library.get("main").version == version
    assert problems and all(p.pos.file.endswith("main.yaml") and p.pos.line >= 1 for p in problems)
    assert library.problems == problems


def test_a_fixed_edit_after_a_broken_one_is_served(tmp_path):
    """Garbage, then a good new version: the new version serves and nothing is refused."""
    path = _write(tmp_path, "main", GOOD)
    library = _library(tmp_path)
    _touch_later(path, BROKEN_FILES["binary_garbage"])
    library.reload()
    _touch_later(path, GOOD_V2)
    library.reload()
    assert library.problems == []
    assert library.get("main").steps["bye"].params["prompt"] == "Goodbye again."


def test_a_deeply_nested_file_does_not_stop_the_library_loading(tmp_path):
    """One file nested 1000 deep is refused; the other flows load (serve can start)."""
    _write(tmp_path, "good", GOOD)
    _write(tmp_path, "deep", _nested(DEEP))
    library = _library(tmp_path)
    assert library.names() == ["good"]
    assert any(p.pos.file.endswith("deep.yaml") for p in library.problems)


def test_a_deeply_nested_edit_is_refused_like_any_broken_edit(tmp_path):
    """Editing a served flow into 1000-deep nesting: refused with file:line, old version serves."""
    path = _write(tmp_path, "main", GOOD)
    library = _library(tmp_path)
    version = library.get("main").version
    _touch_later(path, _nested(DEEP))
    library.reload()
    assert library.get("main").version == version
    assert any(p.pos.file.endswith("main.yaml") for p in library.problems)


def test_a_deleted_flows_directory_keeps_serving(tmp_path):
    """The whole directory vanishing during a deploy does not drop the loaded flows."""
    flows = tmp_path / "flows"
    flows.mkdir()
    _write(flows, "main", GOOD)
    library = _library(flows)
    (flows / "main.yaml").unlink()
    flows.rmdir()
    assert library.reload() == []
    assert library.names() == ["main"]


# ---------------------------------------------------------------- hardening: sizes, patterns, counters

def test_check_refuses_a_huge_file_without_reading_it(in_tmp, monkeypatch):
    """A 2 GB flow file (sparse here) is refused on its size alone: it is never read."""
    path = in_tmp / "huge.yaml"
    with open(path, "wb") as handle:
        handle.truncate(2 * 1024 ** 3)

    def no_reading(self):
        raise AssertionError(f"{self} was read")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    result = _invoke("flows", "check", "huge.yaml")
    _assert_no_traceback(result)
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith("huge.yaml:1:1: file is too large (2147483648 bytes")


def test_the_library_refuses_a_huge_edit_without_reading_it(tmp_path, monkeypatch):
    """Hot reload of a flow grown to 2 GB: refused on its size, the old version serves."""
    path = _write(tmp_path, "main", GOOD)
    library = _library(tmp_path)
    version = library.get("main").version
    before = path.stat().st_mtime_ns
    with open(path, "r+b") as handle:
        handle.truncate(2 * 1024 ** 3)
    import os
    os.utime(path, ns=(before + 10_000_000_000, before + 10_000_000_000))

    def no_reading(self):
        raise AssertionError(f"{self} was read")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    problems = library.reload()
    assert library.get("main").version == version
    assert [p.message.split(" (")[0] for p in problems] == ["file is too large"]


def test_a_crash_while_checking_one_file_refuses_only_that_file(tmp_path, monkeypatch):
    """Any exception out of the loader/validator for one file (a bug we have not met yet)
    refuses that file with file:1:1; the other flows load."""
    import ivr.library
    real = ivr.library.check_flow_text

    def crash_on_bad(data, filename, **kwargs):
        if filename.endswith("bad.yaml"):
            raise MemoryError()
        return real(data, filename, **kwargs)

    monkeypatch.setattr(ivr.library, "check_flow_text", crash_on_bad)
    _write(tmp_path, "bad", GOOD)
    _write(tmp_path, "good", GOOD)
    library = _library(tmp_path)
    assert library.names() == ["good"]
    assert [(Path(p.pos.file).name, p.pos.line) for p in library.problems] == [("bad.yaml", 1)]
    assert "MemoryError" in library.problems[0].message


@pytest.mark.parametrize("pattern", ["(1+)+2", "(1*)*2", "(1|11)+2", "((12)+3?)*", "(?:0|00)+$"])
def test_check_refuses_a_collect_pattern_that_can_backtrack_for_ever(pattern):
    """Patterns run on the reactor against caller keys: nested repetitions are refused."""
    text = ("steps:\n  c:\n    type: collect\n    var: x\n    prompt: hi\n"
            f"    pattern: '{pattern}'\n    next: b\n  b:\n    type: hangup\n")
    _, problems = check_flow_text(text, "c.yaml")
    assert [(p.pos.line, "for ever" in p.message) for p in problems] == [(6, True)], problems


@pytest.mark.parametrize("pattern", [r"[1-9]\d{3,5}", r"(\d{4})+", r"0\d{2,3}-?\d{6,8}", r"(1|2)+", "[12]+3"])
def test_check_accepts_ordinary_collect_patterns(pattern):
    """Repetitions of fixed-width groups and character classes are fine."""
    text = ("steps:\n  c:\n    type: collect\n    var: x\n    prompt: hi\n"
            f"    pattern: '{pattern}'\n    next: b\n  b:\n    type: hangup\n")
    _, problems = check_flow_text(text, "c.yaml")
    assert problems == []


def test_check_refuses_a_direct_dial_pattern_that_can_backtrack_for_ever():
    """The same guard applies to a menu's direct_dial pattern."""
    text = ("steps:\n  m:\n    type: menu\n    prompt: hi\n    choices: {1: b}\n"
            "    direct_dial: {pattern: '([1-9]+)+', max_digits: 4, context: internal}\n"
            "  b:\n    type: hangup\n")
    _, problems = check_flow_text(text, "m.yaml")
    assert any("direct_dial.pattern" in p.message and "for ever" in p.message for p in problems), problems


@pytest.mark.parametrize("step", [
    "  m:\n    type: collect\n    var: x\n    prompt: hi\n    retries: 21\n    next: b\n",
    "  m:\n    type: authenticate\n    account_prompt: a\n    pin_prompt: p\n    max_attempts: 1000\n    next: b\n",
])
def test_check_refuses_counters_above_the_maximum(step):
    """retries / max_attempts above 20 are refused with the key named."""
    _, problems = check_flow_text("steps:\n" + step + "  b:\n    type: hangup\n", "m.yaml")
    assert [p.message.split(":")[1].strip() for p in problems if p.severity == "error"] in (
        ["'retries' must be at most 20, not 21"], ["'max_attempts' must be at most 20, not 1000"]), problems


def test_check_accepts_twenty_retries():
    """The maximum itself is allowed."""
    text = ("steps:\n  m:\n    type: menu\n    prompt: hi\n    choices: {1: b}\n"
            "    retries: 20\n  b:\n    type: hangup\n")
    assert check_flow_text(text, "m.yaml")[1] == []


def test_check_refuses_a_timeout_too_large_for_a_float():
    """`timeout: 1000...0` (400 digits) is refused, not an OverflowError in the validator."""
    text = ("steps:\n  m:\n    type: menu\n    prompt: hi\n    choices: {1: b}\n"
            f"    timeout: 1{'0' * 400}\n  b:\n    type: hangup\n")
    _, problems = check_flow_text(text, "m.yaml")
    assert [(p.pos.line, "finite number" in p.message) for p in problems] == [(6, True)], problems
