"""`hotline flows check|graph`: compiler-style lines, a summary, exit codes, DOT and Mermaid output."""
import shutil

import pytest
from click.testing import CliRunner

from flows_helpers import FIXTURES, TEST_TYPES
from hotline.cli import main


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project directory with flows/ (the good fixtures), as the current directory."""
    shutil.copytree(FIXTURES / "good", tmp_path / "flows")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args):
    result = CliRunner().invoke(main, ["flows", *args], obj={"registry": TEST_TYPES})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_check_defaults_to_flows_dir_and_passes(project):
    """With no PATH, flows/ is checked; clean files exit 0 with a summary."""
    result = run("check")
    assert result.exit_code == 0
    assert result.output == "2 files, 0 errors, 0 warnings\n"


def test_check_prints_problems_relative_to_cwd_and_fails(project):
    """Problems print as flows/file:line:col: message, then the summary; errors exit 1."""
    shutil.copy(FIXTURES / "unknown_key.yaml", project / "flows" / "menu.yaml")
    result = run("check")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "flows/menu.yaml:10:5: step 'menu': unknown key 'timout' (did you mean 'timeout'?)",
        "3 files, 1 error, 0 warnings"]


def test_check_single_file_by_absolute_path(project):
    """A file PATH is checked alone and shown relative to the current directory."""
    shutil.copy(FIXTURES / "infinite_loop.yaml", project / "flows" / "loop.yaml")
    result = run("check", str(project / "flows" / "loop.yaml"))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "flows/loop.yaml:3:3: infinite loop with no caller input: start_over -> again -> start_over",
        "1 file, 1 error, 0 warnings"]


def test_warnings_pass_unless_strict(project):
    """Warnings alone exit 0, and 1 with --strict."""
    (project / "flows" / "w.yaml").write_text(
        "steps:\n  c:\n    type: collect\n    var: caller_id\n    prompt: Number?\n")
    relaxed = run("check", "flows/w.yaml")
    assert relaxed.exit_code == 0
    assert relaxed.output.splitlines() == [
        "flows/w.yaml:4:10: warning: step 'c': 'var' overwrites the built-in variable 'caller_id'",
        "1 file, 0 errors, 1 warning"]
    assert run("check", "--strict", "flows/w.yaml").exit_code == 1


def test_malformed_yaml_is_one_line_not_a_traceback(project):
    """A YAML syntax error prints as one located line."""
    shutil.copy(FIXTURES / "malformed.yaml", project / "flows" / "broken.yaml")
    result = run("check", "flows/broken.yaml")
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith("flows/broken.yaml:7:8: YAML syntax error:")


def test_missing_path_exits_2(project):
    """A PATH that does not exist prints one clear line and exits 2."""
    result = run("check", "flows/nope.yaml")
    assert result.exit_code == 2
    assert "flows/nope.yaml: no such file or directory" in result.output
    assert "Traceback" not in result.output


def test_graph_dot(project):
    """DOT output has one node per step labelled name\\n(type) and edges labelled by key."""
    result = run("graph", "flows/main.yaml")
    assert result.exit_code == 0
    out = result.output
    assert out.startswith('digraph "main" {')
    assert '"main_menu" [label="main_menu\\n(menu)"];' in out
    assert '"main_menu" -> "billing" [label="choices.1"];' in out
    assert '"route" -> "count" [label="conditions.0.goto"];' in out
    assert '"__start__" -> "welcome";' in out
    assert '"__error__" -> "sorry" [label="on_error", style=dashed];' in out
    assert '"operator" [label="operator\\n(queue)", peripheries=2];' in out


def test_graph_mermaid(project):
    """Mermaid output uses prefixed ids, <br/> labels, and a dotted on_error edge."""
    result = run("graph", "--format", "mermaid", "flows/main.yaml")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "flowchart LR"
    assert '  s_main_menu["main_menu<br/>(menu)"]' in lines
    assert '  s_main_menu -->|"choices.0"| s_operator' in lines
    assert '  error__ -.->|"on_error"| s_sorry' in lines


def test_graph_escapes_mermaid_hash(project):
    """A `#` choice is written as a Mermaid entity so the label survives."""
    (project / "flows" / "hash.yaml").write_text(
        "steps:\n  m:\n    type: menu\n    prompt: Hi\n    choices: {'#': m}\n")
    assert '  s_m -->|"choices.#35;"| s_m' in run("graph", "--format", "mermaid", "flows/hash.yaml").output


def test_graph_of_a_flow_with_errors_draws_and_fails(project):
    """A flow with errors is still drawn (missing targets in red), problems go out, exit 1."""
    shutil.copy(FIXTURES / "bad_target.yaml", project / "flows" / "t.yaml")
    result = run("graph", "flows/t.yaml")
    assert result.exit_code == 1
    assert '"sales" [label="sales\\n(missing)", color=red];' in result.output
    assert "flows/t.yaml:7:10: step 'main_menu': 'choices.1' goes to step 'sales'" in result.output


def test_graph_of_unparseable_file_exits_1(project):
    """A file that cannot be parsed prints its problem and no graph."""
    shutil.copy(FIXTURES / "malformed.yaml", project / "flows" / "broken.yaml")
    result = run("graph", "flows/broken.yaml")
    assert result.exit_code == 1
    assert "digraph" not in result.output
    assert "flows/broken.yaml:7:8: YAML syntax error" in result.output


def test_graph_missing_file_exits_2(project):
    """graph on a missing file prints one line and exits 2."""
    result = run("graph", "flows/none.yaml")
    assert result.exit_code == 2
    assert "flows/none.yaml: no such file" in result.output
