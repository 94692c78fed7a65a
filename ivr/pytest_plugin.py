"""pytest plugin for flow tests: ``--flow-coverage`` and the ``flows_dir`` fixture.

An admin who tests a flow with ``ivr.testing.call`` wants to know which steps no test
ever reached (the holiday notice, the third wrong PIN...). Every ``call`` records the
steps it went through; with ``--flow-coverage`` the terminal summary prints, per flow,
``visited/total`` and the steps never visited. Registered through the ``pytest11``
entry point ``hotline_flows`` (or ``pytest -p ivr.pytest_plugin``).
"""
from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hotline", "Hotline IVR flows")
    group.addoption("--flow-coverage", action="store_true", default=False,
                    help="Print which steps of each flow the tests visited (ivr.testing.call).")
    parser.addini("flows_dir", "Directory of the flow files (default: <rootdir>/flows).", default="")


@pytest.fixture
def flows_dir(request: pytest.FixtureRequest) -> Path:
    """The flows directory: the ``flows_dir`` ini option, else ``<rootdir>/flows``."""
    configured = request.config.getini("flows_dir")
    root = Path(str(request.config.rootpath))
    return (root / configured) if configured else root / "flows"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not config.getoption("flow_coverage", default=False):
        return
    from ivr.testing import COVERAGE
    terminalreporter.write_sep("=", "flow coverage")
    lines = COVERAGE.report()
    if not lines:
        terminalreporter.write_line("no flow was called (ivr.testing.call)")
        return
    for line in lines:
        terminalreporter.write_line(line)
