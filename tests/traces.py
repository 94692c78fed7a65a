"""Where the real Asterisk 22 recordings are: ``HOTLINE_TRACES``, else ``../shared``
beside this checkout (how CI lays it out), else the workspace's shared folder."""
from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    os.environ.get("HOTLINE_TRACES"),
    Path(__file__).resolve().parents[2] / "shared" / "asterisk-traces",
    "/work/shared/asterisk-traces",
]


def find_traces() -> Path:
    for candidate in _CANDIDATES:
        if candidate and (Path(candidate) / "README.md").is_file():
            return Path(candidate)
    raise FileNotFoundError(
        "Asterisk traces not found: set HOTLINE_TRACES or put shared/asterisk-traces "
        "beside this checkout")


TRACES = find_traces()
