"""Every step type of docs/flow-spec.md; importing this package registers them all.

One module per family: ``prompting`` (say, hangup), ``input`` (menu, collect,
language), ``data`` (authenticate, lookup, branch, set), ``hours``, ``routing`` (queue,
transfer, dial, voicemail, callback, goto, subflow) and ``survey``.
"""
from ivr.steps import data, hours, input, prompting, routing, survey  # noqa: F401  (registers)

__all__ = ["data", "hours", "input", "prompting", "routing", "survey"]
