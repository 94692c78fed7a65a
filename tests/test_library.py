"""FlowLibrary: serves every flow in a directory and hot-reloads edits, keeping the last good version."""
import logging
import os
import shutil

import pytest

from flows_helpers import FIXTURES, TEST_TYPES
from ivr.library import FlowLibrary, UnknownFlow

GOOD = "steps:\n  hello:\n    type: say\n    prompt: {text}\n"
BROKEN = "steps:\n  hello:\n    type: say\n    prompt: Hi\n    nxt: hello\n"


def write(path, text, bump=1):
    """Write `text` and move the mtime forward so a same-size edit is still seen."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


@pytest.fixture
def flows_dir(tmp_path):
    shutil.copytree(FIXTURES / "good", tmp_path / "flows")
    return tmp_path / "flows"


@pytest.fixture
def library(flows_dir):
    return FlowLibrary(flows_dir, registry=TEST_TYPES, log=logging.getLogger("test.flows"))


def test_loads_every_flow_in_the_directory(library):
    """Each *.yaml file is served under its file name."""
    assert library.names() == ["billing", "main"]
    assert library.get("main").steps["welcome"].type == "say"
    assert library.problems == []


def test_unknown_flow_raises(library):
    """get() of a name with no file raises UnknownFlow, a KeyError."""
    with pytest.raises(UnknownFlow) as info:
        library.get("sales")
    assert isinstance(info.value, KeyError)
    assert "no flow named 'sales'" in str(info.value)


def test_good_edit_replaces_the_flow(flows_dir, library):
    """After a good edit, reload() serves the new version; the old object is untouched."""
    old = library.get("billing")
    write(flows_dir / "billing.yaml", GOOD.format(text="Billing is closed today."))
    assert library.reload() == []
    new = library.get("billing")
    assert new.version != old.version
    assert new.steps["hello"].params["prompt"] == "Billing is closed today."
    assert "balance" in old.steps   # a call in progress keeps its own Flow


def test_broken_edit_keeps_the_last_good_version(flows_dir, library, caplog):
    """A broken edit is refused with file:line, logged, and the previous version keeps serving."""
    old = library.get("billing")
    write(flows_dir / "billing.yaml", BROKEN)
    with caplog.at_level(logging.WARNING, logger="test.flows"):
        refused = library.reload()
    expected = f"{flows_dir / 'billing.yaml'}:5:5: step 'hello': unknown key 'nxt' (did you mean 'next'?)"
    assert [str(p) for p in refused] == [expected]
    assert [str(p) for p in library.problems] == [expected]
    assert library.get("billing") is old
    assert any(expected in record.getMessage() for record in caplog.records)
    assert any("flow_refused name=billing" in r.getMessage() and f"serving={old.version}" in r.getMessage()
               for r in caplog.records)


def test_fixing_a_broken_edit_clears_the_problem(flows_dir, library):
    """Once the file is fixed, the fixed version serves and no problem remains."""
    write(flows_dir / "billing.yaml", BROKEN, bump=1)
    library.reload()
    write(flows_dir / "billing.yaml", GOOD.format(text="Fixed."), bump=2)
    assert library.reload() == []
    assert library.problems == []
    assert library.get("billing").steps["hello"].params["prompt"] == "Fixed."


def test_unchanged_files_are_not_reparsed(flows_dir, library):
    """A reload with nothing changed returns the very same Flow objects."""
    before = library.get("main")
    assert library.reload() == []
    assert library.get("main") is before


def test_touched_file_with_same_content_keeps_its_flow(flows_dir, library):
    """A new mtime with the same bytes does not replace the Flow object."""
    before = library.get("billing")
    write(flows_dir / "billing.yaml", (flows_dir / "billing.yaml").read_text())
    library.reload()
    assert library.get("billing") is before


def test_new_file_appears(flows_dir, library):
    """A file added to the directory is served after the next reload."""
    write(flows_dir / "sales.yaml", GOOD.format(text="Sales."))
    library.reload()
    assert "sales" in library
    assert library.get("sales").name == "sales"


def test_deleted_file_disappears_and_is_logged(flows_dir, library, caplog):
    """A deleted file stops being served, and the removal is logged."""
    (flows_dir / "billing.yaml").unlink()
    with caplog.at_level(logging.WARNING, logger="test.flows"):
        library.reload()
    assert "billing" not in library
    with pytest.raises(UnknownFlow):
        library.get("billing")
    assert any("flow_removed name=billing" in r.getMessage() for r in caplog.records)


def test_deleting_a_subflow_is_reported_on_its_callers(flows_dir, library):
    """When a subflow's file goes, flows calling it are rechecked; the caller's last good version stays."""
    main = library.get("main")
    (flows_dir / "billing.yaml").unlink()
    refused = [str(p) for p in library.reload()]
    assert any("step 'billing': flow 'billing' not found" in line for line in refused), refused
    assert library.get("main") is main


def test_broken_file_at_start_is_not_served(tmp_path):
    """A file that was never good is not served, and get() says why."""
    (tmp_path / "bad.yaml").write_text(BROKEN)
    library = FlowLibrary(tmp_path, registry=TEST_TYPES)
    assert library.names() == []
    with pytest.raises(UnknownFlow, match="has errors and no earlier good version"):
        library.get("bad")
    assert len(library.problems) == 1


def test_missing_directory_keeps_serving(flows_dir, library):
    """If the directory disappears (a deploy swapping it), the loaded flows keep serving."""
    shutil.rmtree(flows_dir)
    assert library.reload() == []
    assert library.names() == ["billing", "main"]


def test_same_refusal_is_logged_once(flows_dir, library, caplog):
    """Polling an unchanged broken file does not log the refusal again."""
    write(flows_dir / "billing.yaml", BROKEN)
    with caplog.at_level(logging.WARNING, logger="test.flows"):
        library.reload()
        count = len(caplog.records)
        write(flows_dir / "sales.yaml", GOOD.format(text="x"))   # forces a recheck of every file
        library.reload()
    assert len([r for r in caplog.records if "flow_refused" in r.getMessage()]) == 1
    assert count > 0
