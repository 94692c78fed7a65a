"""The ``survey`` step: questions answered 1-5 with a key, each answer stored with the call.

Any other key, or no key before ``timeout``, is stored as "no answer" (None) and the
survey moves on: a caller is never asked twice. Storing is a write the caller must not
wait on, so a database error is a warning on the session, not a flow error.
"""
from __future__ import annotations

import re
from typing import ClassVar

from ivr.commands import WaitForDigit
from ivr.engine import ALL_KEYS, StepContext, key_of
from ivr.flow import FlowProblem, Key, Step, StepRun, StepType, register_step_type
from ivr.steps._common import problem, timeout_ms

__all__ = ["Survey", "RATING_KEYS"]

RATING_KEYS = "12345"
_QUESTION_ID = re.compile(r"[A-Za-z0-9_.\-]{1,60}\Z")


@register_step_type
class Survey(StepType):
    type_name = "survey"
    doc = "Ask questions answered with a key from 1 to 5; store each answer."
    waits_for_input = True
    keys: ClassVar = {
        "questions": Key("list", required=True, doc="list of {id: ..., prompt: ...}"),
        "timeout": Key("float", default=5, doc="seconds per question"),
        "thanks_prompt": Key("prompt"),
        "next": Key("target"),
    }

    def writes(self, step: Step) -> set[str]:
        return {f"survey_{q['id']}" for q in step.params.get("questions") or []
                if isinstance(q, dict) and isinstance(q.get("id"), str)}

    def check(self, step: Step) -> list[FlowProblem]:
        found = []
        questions = step.params.get("questions")
        if not isinstance(questions, list):
            return found
        if not questions:
            found.append(problem(step, "questions", "'questions' needs at least one question"))
        seen = set()
        for index, question in enumerate(questions):
            path = f"questions.{index}"
            if not isinstance(question, dict) or set(question) != {"id", "prompt"}:
                found.append(problem(step, path, f"'{path}' must be a mapping with exactly 'id' and 'prompt'"))
                continue
            qid = question["id"]
            if not isinstance(qid, str) or not _QUESTION_ID.match(qid):
                found.append(problem(step, f"{path}.id", f"'{qid}' is not a question id (letters, digits, _ . -)"))
            elif qid in seen:
                found.append(problem(step, f"{path}.id", f"question id '{qid}' is used twice"))
            seen.add(qid)
        return found

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        wait_ms = timeout_ms(params.get("timeout", 5))
        for question in params["questions"]:
            key = yield from ctx.play(question["prompt"], ALL_KEYS)
            if key is None:
                result = yield WaitForDigit(wait_ms)
                key = key_of(result)
            rating = int(key) if key is not None and key in RATING_KEYS else None
            qid = str(question["id"])
            ctx.variables[f"survey_{qid}"] = rating
            ctx.record_input(f"survey_{qid}", rating)
            yield from ctx.service("store_survey", optional=True, session_id=ctx.session_id,
                                   question=qid, rating=rating)
        if params.get("thanks_prompt") is not None:
            yield from ctx.play(params["thanks_prompt"])
        return params.get("next")
