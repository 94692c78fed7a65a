"""The ``hours`` step: open, closed or holiday, in the centre's own time zone.

The time is the session's (``env['now']`` when a test or the simulator fixes it), read
in ``timezone`` with ``zoneinfo``, so daylight saving and a server in another zone
change nothing. A range whose end is not after its start (``22:00-02:00``) runs past
midnight into the next day; ``24:00`` is the end of the day.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, ClassVar, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr.engine import StepContext
from ivr.flow import FlowProblem, Key, Step, StepRun, StepType, register_step_type
from ivr.steps._common import problem

__all__ = ["Hours", "parse_days", "parse_range", "is_open_at", "DAYS"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})\s*\Z")


def parse_days(key: str) -> list[int]:
    """``mon`` -> [0]; ``mon-fri`` -> [0..4]; ``fri-mon`` wraps -> [4, 5, 6, 0]. ValueError if bad."""
    text = str(key).strip().lower()
    first, sep, last = text.partition("-")
    if first not in DAYS or (sep and last not in DAYS):
        raise ValueError(f"'{key}' is not a day (mon..sun) or a range of days (mon-fri)")
    start = DAYS.index(first)
    end = DAYS.index(last) if sep else start
    return [(start + i) % 7 for i in range((end - start) % 7 + 1)]


def parse_range(text: Any) -> tuple[int, int]:
    """``"09:00-18:00"`` -> (540, 1080) minutes; the end may be 24:00. ValueError if bad."""
    match = _RANGE.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a time range like \"09:00-18:00\"")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"'{text}' has an impossible time")
    return h1 * 60 + m1, h2 * 60 + m2


def _holiday_dates(values: Iterable[Any]) -> set[date]:
    out = set()
    for value in values:
        out.add(value if isinstance(value, date) else date.fromisoformat(str(value).strip()))
    return out


def is_open_at(local: datetime, open_map: dict) -> bool:
    """Whether ``local`` (a time in the centre's zone) falls in one of the open ranges."""
    minute = local.hour * 60 + local.minute
    today = local.weekday()
    yesterday = (today - 1) % 7
    for key, ranges in open_map.items():
        days = parse_days(key)
        for text in ranges or []:
            start, end = parse_range(text)
            if end > start:
                if today in days and start <= minute < end:
                    return True
            else:   # runs past midnight
                if today in days and minute >= start:
                    return True
                if yesterday in days and minute < end:
                    return True
    return False


@register_step_type
class Hours(StepType):
    type_name = "hours"
    doc = "Open hours and holidays in a time zone: go to if_open, if_closed or if_holiday."
    keys: ClassVar = {
        "timezone": Key("str", default="UTC", doc="IANA name, e.g. Asia/Shanghai"),
        "open": Key("map", required=True, doc="day or day range -> list of \"HH:MM-HH:MM\""),
        "holidays": Key("list", default=[], doc="dates YYYY-MM-DD"),
        "if_open": Key("target", required=True),
        "if_closed": Key("target", required=True),
        "if_holiday": Key("target", doc="default: if_closed"),
    }

    def writes(self, step: Step) -> set[str]:
        return {"is_open"}

    def check(self, step: Step) -> list[FlowProblem]:
        found = []
        zone = step.params.get("timezone")
        if isinstance(zone, str):
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                found.append(problem(step, "timezone", f"unknown time zone '{zone}' (write an IANA name "
                                                       f"like Asia/Shanghai or UTC)"))
        open_map = step.params.get("open")
        if isinstance(open_map, dict):
            for key, ranges in open_map.items():
                try:
                    parse_days(key)
                except ValueError as exc:
                    found.append(problem(step, f"open.{key}", str(exc)))
                if not isinstance(ranges, list):
                    found.append(problem(step, f"open.{key}", f"'open.{key}' must be a list of "
                                                             f"\"HH:MM-HH:MM\""))
                    continue
                for index, text in enumerate(ranges):
                    try:
                        parse_range(text)
                    except ValueError as exc:
                        found.append(problem(step, f"open.{key}.{index}", str(exc)))
        holidays = step.params.get("holidays")
        if isinstance(holidays, list):
            for index, value in enumerate(holidays):
                try:
                    _holiday_dates([value])
                except ValueError:
                    found.append(problem(step, f"holidays.{index}", f"'{value}' is not a date YYYY-MM-DD"))
        return found

    def run(self, step: Step, ctx: StepContext) -> StepRun:
        params = step.params
        try:
            zone = ZoneInfo(params.get("timezone") or "UTC")
            local = ctx.now_in(zone)
            holidays = _holiday_dates(params.get("holidays") or [])
            holiday = local.date() in holidays
            is_open = not holiday and is_open_at(local, params["open"])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            ctx.fail(f"cannot tell the opening hours: {exc}")
        ctx.variables["is_open"] = is_open
        if holiday:
            return params.get("if_holiday") or params["if_closed"]
        return params["if_open"] if is_open else params["if_closed"]
        yield  # a generator, like every step

