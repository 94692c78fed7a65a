"""The loader and validator against the real step types (ivr.steps) and the example flows."""
from pathlib import Path

import pytest

pytest.importorskip("ivr.steps")

from ivr.flow import STEP_TYPES  # noqa: E402
from ivr.loader import check_flow_file, check_flow_text  # noqa: E402

REPO = Path(__file__).parent.parent
SPEC_TYPES = {"say", "menu", "collect", "authenticate", "lookup", "branch", "set", "hours", "queue",
              "transfer", "dial", "voicemail", "callback", "survey", "language", "goto", "subflow",
              "hangup"}


def test_every_step_type_of_the_spec_is_registered():
    """Importing ivr.steps registers every step type docs/flow-spec.md lists."""
    assert SPEC_TYPES <= set(STEP_TYPES)


def test_unknown_key_in_a_real_menu():
    """The real menu step gives the documented did-you-mean line."""
    text = ("steps:\n  main_menu:\n    type: menu\n    prompt: Press 1.\n    timout: 3\n"
            "    choices: {1: main_menu}\n")
    _, problems = check_flow_text(text, "flows/main.yaml", flows_dir=REPO / "flows")
    assert "flows/main.yaml:5:5: step 'main_menu': unknown key 'timout' (did you mean 'timeout'?)" \
        in [str(p) for p in problems]


def test_defaults_of_real_step_types_pass_their_own_kinds():
    """A key's declared default is valid for its own kind (the validator checks defaulted values too)."""
    from ivr.validator import _SIMPLE_KINDS
    bad = []
    for name, step_type in STEP_TYPES.items():
        for key, spec in step_type.keys.items():
            checker = _SIMPLE_KINDS.get(spec.kind)
            if spec.default is not None and checker is not None and not checker[0](spec.default):
                bad.append(f"{name}.{key}={spec.default!r} ({spec.kind})")
    assert bad == []


@pytest.mark.parametrize("path", sorted((REPO / "flows").glob("*.yaml")), ids=lambda p: p.name)
def test_example_flows_have_no_errors(path):
    """Every example flow shipped in flows/ passes `hotline flows check`."""
    _, problems = check_flow_file(path)
    assert [str(p) for p in problems if p.severity == "error"] == []
