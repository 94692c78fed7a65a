"""Tiny step types for loader/validator/library tests, registered in a private registry.

They mirror the shape of the real ones in docs/flow-spec.md (say, menu, collect,
branch, set, goto, subflow, hangup) so the tests do not depend on ``ivr.steps``.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ivr.flow import FlowProblem, Key, Step, StepType

FIXTURES = Path(__file__).parent / "flow_fixtures"


class Say(StepType):
    type_name = "say"
    keys: ClassVar = {"prompt": Key("prompt", required=True), "interruptible": Key("bool", default=False),
                      "next": Key("target")}


class Menu(StepType):
    type_name = "menu"
    waits_for_input = True
    keys: ClassVar = {
        "prompt": Key("prompt", required=True), "choices": Key("digit_targets", required=True),
        "timeout": Key("float", default=5), "retries": Key("int", default=3),
        "invalid_prompt": Key("prompt", default={"sound": "invalid"}),
        "on_timeout": Key("target"), "on_invalid": Key("target"),
    }

    def writes(self, step: Step) -> set[str]:
        return {"menu_choice"}


class Collect(StepType):
    type_name = "collect"
    waits_for_input = True
    keys: ClassVar = {
        "var": Key("var", required=True), "prompt": Key("prompt", required=True),
        "min_digits": Key("int", default=1), "max_digits": Key("int", default=20),
        "terminator": Key("digit", default="#"), "next": Key("target"),
    }

    def check(self, step: Step) -> list[FlowProblem]:
        if step.params["min_digits"] > step.params["max_digits"]:
            return [FlowProblem(step.where("min_digits"),
                                f"step '{step.name}': min_digits is above max_digits")]
        return []


class Branch(StepType):
    type_name = "branch"
    keys: ClassVar = {"conditions": Key("list", required=True), "else": Key("target", required=True)}

    def targets(self, step: Step) -> list[tuple[str, str]]:
        out = [(f"conditions.{i}.goto", c.get("goto")) for i, c in enumerate(step.params["conditions"])]
        return out + [("else", step.params["else"])]


class SetVars(StepType):
    type_name = "set"
    keys: ClassVar = {"vars": Key("map", required=True), "next": Key("target")}

    def writes(self, step: Step) -> set[str]:
        return set(step.params["vars"])


class Goto(StepType):
    type_name = "goto"
    keys: ClassVar = {"target": Key("target", required=True)}


class Subflow(StepType):
    type_name = "subflow"
    keys: ClassVar = {"flow": Key("flow", required=True), "next": Key("target")}


class Queue(StepType):
    type_name = "queue"
    terminal = True
    keys: ClassVar = {"queue": Key("queue", required=True), "max_wait": Key("int", default=600)}


class Survey(StepType):
    type_name = "survey"
    keys: ClassVar = {"questions": Key("list", required=True), "next": Key("target")}


class Hangup(StepType):
    type_name = "hangup"
    terminal = True
    keys: ClassVar = {"prompt": Key("prompt")}


TEST_TYPES: dict[str, StepType] = {cls.type_name: cls() for cls in
                                   (Say, Menu, Collect, Branch, SetVars, Goto, Subflow, Queue, Survey, Hangup)}
