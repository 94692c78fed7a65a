"""The example flows (flows/*.yaml), call by call: each test is one caller's story.

They double as examples of flow tests for administrators (``ivr.testing.call``).
Demo customers (ivr.memory_services.DEMO_CUSTOMERS):
100001/1234 VIP (12 345.67 yuan, paid 200 on 2026-11-20, ticket T-000101 in progress),
100002/2345 key (500 yuan, no payment yet, no ticket),
100003/3456 regular (-12.50 yuan, paid 99 on 2026-10-02, ticket T-000102 closed).
"""
from __future__ import annotations

import pytest

from ivr.testing import call

OPEN = "2026-11-24T10:00+08:00"          # a Tuesday morning in Shanghai
SATURDAY_EVENING = "2026-11-28T17:00+08:00"
SUNDAY = "2026-11-29T11:00+08:00"
NATIONAL_DAY = "2026-10-01T10:00+08:00"  # a Thursday, but a public holiday


def english_customer(account: str, pin: str, now: str = OPEN):
    """A caller on the English line who picks English and logs in."""
    return (call("flows/main.yaml", now=now)
            .press("1")
            .hears("Thank you for calling")
            .press(f"{account}#").press(f"{pin}#")
            .hears("For your balance, press 1"))


# ------------------------------------------------------------------ self-service

def test_balance_is_said_in_yuan_and_fen():
    """Menu 1 says the balance: units, yuan, cents, fen."""
    (english_customer("100001", "1234")
        .press("1")
        .hears("Your balance is")
        .hears_number(12345).hears("yuan")
        .hears_number(67).hears("fen")
        .hears("To return to the menu"))


def test_balance_check_with_hears_money():
    """hears_money checks units and cents in one go."""
    english_customer("100002", "2345").press("1").hears_money(50000).hears("To return to the menu")


def test_negative_balance_is_said_with_its_sign():
    """A customer who owes money hears a negative amount."""
    english_customer("100003", "3456").press("1").hears_money(-1250)


def test_last_payment_amount_and_date():
    """Menu 2 says the last payment's amount and the day it was received."""
    (english_customer("100001", "1234")
        .press("2")
        .hears("Your last payment")
        .hears_money(20000)
        .hears("was received on")
        .hears_date("2026-11-20"))


def test_customer_without_payment_is_told_so():
    """A customer with no payment on record hears that, not an empty amount."""
    (english_customer("100002", "2345")
        .press("2")
        .hears("no payment on record")
        .visited("no_payment"))


def test_ticket_in_progress_is_read_out():
    """Menu 3 reads the customer's open ticket and its status."""
    (english_customer("100001", "1234")
        .press("3")
        .hears("An engineer is working on your ticket")
        .hears_spelled("T-000101"))


def test_closed_ticket_is_reported_closed():
    """A customer whose latest ticket is closed hears it is closed."""
    english_customer("100003", "3456").press("3").hears("is closed").visited("ticket_closed")


def test_no_ticket_at_all():
    """A customer who never opened a ticket hears there is none."""
    english_customer("100002", "2345").press("3").hears("no open repair ticket")


def test_open_ticket_of_your_own_customer():
    """Your own test customers: a just-opened ticket is "received, waiting for an engineer"."""
    customers = [{"account": "200001", "pin": "4321", "name": "Test", "tier": "regular",
                  "tickets": [{"reference": "T-000900", "status": "open"}]}]
    (call("flows/main.yaml", now=OPEN, customers=customers)
        .press("1").press("200001#").press("4321#")
        .press("3")
        .hears("Your ticket")
        .hears_spelled("T-000900")
        .hears("has been received"))


@pytest.mark.parametrize("key, kind", [("1", "line"), ("2", "internet"), ("3", "other")])
def test_fault_report_opens_a_ticket_then_queues_for_support(key, kind):
    """Menu 4: the caller picks the kind of fault, a ticket is opened and read back,
    and the caller is queued for a support engineer."""
    c = (english_customer("100001", "1234")
         .press("4")
         .hears("no dial tone")
         .press(key)
         .hears("Your fault report number is")
         .hears("support engineer")
         .variable("fault_kind", kind)
         .ends_in_queue("support", priority=10))
    ticket = c.services.tickets[-1]
    assert (ticket["kind"], ticket["summary"]) == ("fault", f"IVR fault report: {kind}")
    c.variable("ticket_reference", ticket["reference"])
    assert ticket["customer_id"] is not None and ticket["session_id"] is not None


def test_nothing_more_to_do_ends_the_call_with_thanks():
    """Silence at "anything else?" thanks the caller and hangs up."""
    (english_customer("100002", "2345")
        .press("1")
        .timeout().timeout()
        .hears("Thank you for using our self-service")
        .hears("Goodbye")
        .ends_with("completed"))


def test_star_in_the_fault_menu_goes_back():
    """Star in the fault menu returns to the main menu."""
    english_customer("100003", "3456").press("4").press("*").hears("For your balance, press 1")


# ------------------------------------------------------------------ agents, by tier

@pytest.mark.parametrize("account, pin, queue, priority", [
    ("100001", "1234", "vip", 10),
    ("100002", "2345", "key", 5),
    ("100003", "3456", "regular", 0),
])
def test_zero_reaches_an_agent_queue_by_tier(account, pin, queue, priority):
    """0 at the menu queues the caller by tier: VIP and key customers first."""
    english_customer(account, pin).press("0").ends_in_queue(queue, priority=priority)


def test_zero_after_hearing_the_balance_reaches_an_agent():
    """0 at "anything else?" also reaches an agent."""
    english_customer("100001", "1234").press("1").press("0").ends_in_queue("vip")


def test_a_caller_who_never_chooses_is_put_through_to_an_agent():
    """Three silent tries at the menu: an agent takes over instead of a hangup."""
    (english_customer("100003", "3456")
        .timeout().timeout().timeout()
        .ends_in_queue("regular"))


def test_wrong_pin_three_times_goes_to_the_operator():
    """Three failed logins: an apology, then the operator queue."""
    c = call("flows/main.yaml", now=OPEN).press("1")
    for _ in range(3):
        c.press("100001#").press("9999#").hears("do not match")
    (c.hears("operator")
        .variable("authenticated", False)
        .ends_in_queue("operator"))


def test_pin_is_never_kept_in_clear():
    """The session records the PIN as •••• only."""
    c = english_customer("100001", "1234").masked("1234")
    assert {"step": "auth", "var": "pin", "value": "••••"} in c.sim.session.inputs


def test_queue_timeout_offers_a_callback():
    """No agent within max_wait: the caller is offered a callback and accepts it."""
    c = (english_customer("100001", "1234")
         .press("0")
         .ends_in_queue("vip")
         .queue_times_out()
         .hears("All our agents are busy")
         .press("1")
         .hears("call you back shortly")
         .ends_with("callback", target="regular"))
    assert c.services.callbacks[0]["number"] == "13800000001"


def test_declining_the_callback_says_goodbye():
    """Any other key than 1 at the callback offer ends the call politely."""
    (english_customer("100002", "2345")
        .press("0").queue_times_out("joinempty")
        .press("9")
        .hears("Please try again later")
        .ends_with("completed"))


# ------------------------------------------------------------------ survey

def test_survey_answers_are_stored_after_the_agent_call():
    """After the agent hangs up, two 1-5 questions are asked and both answers stored."""
    c = (english_customer("100001", "1234")
         .press("0")
         .ends_in_queue("vip")
         .agent_answers()
         .hears("How satisfied were you with the agent")
         .press("5")
         .hears("How well was your problem solved")
         .press("3")
         .hears("Thank you for your feedback")
         .hears("Goodbye")
         .ends_with("queued", target="vip"))
    assert [(a["question"], a["rating"]) for a in c.services.survey_answers] == [
        ("agent_satisfaction", 5), ("problem_solved", 3)]


def test_survey_without_answers_stores_no_answer():
    """Silence or a key outside 1-5 is stored as no answer (None)."""
    c = (english_customer("100003", "3456")
         .press("0").agent_answers()
         .timeout().press("9")
         .ends_with("queued"))
    assert [a["rating"] for a in c.services.survey_answers] == [None, None]


# ------------------------------------------------------------------ opening hours

def test_out_of_hours_caller_leaves_a_voicemail():
    """Saturday evening: the caller hears the opening hours and leaves a message."""
    c = (call("flows/main.yaml", now=SATURDAY_EVENING)
         .press("1")
         .hears("Monday to Friday from 9 a.m. to 6 p.m.")
         .press("1")
         .hears("after the tone")
         .not_visited("auth")
         .ends_with("voicemail", target="1000@default"))
    assert c.services.voicemails[0]["mailbox"] == "1000@default"


def test_out_of_hours_caller_asks_for_a_callback():
    """Sunday: the caller asks to be called back on the number they call from."""
    c = (call("flows/main.yaml", caller_id="13911112222", now=SUNDAY)
         .press("1")
         .press("2")
         .hears("call you back on the number you are calling from")
         .press("1")
         .hears("as soon as we open")
         .ends_with("callback"))
    assert c.services.callbacks[0]["number"] == "13911112222"


def test_public_holiday_is_announced():
    """On National Day the caller is told it is a holiday, then offered voicemail."""
    (call("flows/main.yaml", now=NATIONAL_DAY)
        .press("1")
        .hears("public holiday")
        .hears("To leave a voice message, press 1")
        .visited("holiday_notice"))


def test_out_of_hours_silence_ends_politely():
    """A caller who presses nothing out of hours is thanked and the call ends."""
    (call("flows/main.yaml", now=SUNDAY)
        .press("1").timeout().timeout()
        .hears("Goodbye")
        .ends_with("completed"))


# ------------------------------------------------------------------ languages

def test_english_line_switches_to_chinese_on_2():
    """Pressing 2 on the English line makes every later prompt Chinese."""
    (call("flows/main.yaml", now=OPEN)
        .press("2")
        .hears("感谢您致电示例电信")
        .hears("请输入您的账号")
        .press("100001#").press("1234#")
        .press("1")
        .hears("您的账户余额为")
        .hears_number(12345).hears("元")
        .variable("language", "zh"))


def test_no_key_at_the_language_menu_keeps_english():
    """A caller who does not choose stays in the line's language."""
    call("flows/main.yaml", now=OPEN).timeout().hears("Thank you for calling").variable("language", "en")


def test_chinese_line_speaks_chinese():
    """The Chinese line (main_zh) runs the same service in Mandarin."""
    (call("flows/main_zh.yaml", now=OPEN)
        .hears("普通话服务请按1")
        .press("1")
        .hears("感谢您致电示例电信")
        .press("100002#").press("2345#")
        .hears("查询余额请按1")
        .press("0")
        .ends_in_queue("key", priority=5))


def test_chinese_line_switches_to_english_on_9():
    """Pressing 9 on the Chinese line gives English prompts."""
    (call("flows/main_zh.yaml", now=OPEN)
        .press("9")
        .hears("Thank you for calling Example Telecom")
        .hears("Please enter your account number"))


def test_dialplan_can_fix_the_language():
    """``?lang=zh`` in the AGI URL skips the language menu."""
    (call("flows/main.yaml", now=OPEN, language="zh")
        .not_hears("For English, press 1")
        .hears("感谢您致电示例电信")
        .visited("use_chinese"))


def test_dialplan_can_ask_for_english_on_the_chinese_line():
    """``?lang=en`` on the Chinese line starts in English."""
    (call("flows/main_zh.yaml", now=OPEN, language="en")
        .hears("Thank you for calling Example Telecom")
        .visited("use_english")
        .press("100003#").press("3456#").press("1").timeout().timeout()
        .hears("Goodbye")
        .ends_with("completed"))


def test_chinese_line_holiday_offers_voicemail_in_chinese():
    """The shared opening hours speak Chinese on the Chinese line."""
    (call("flows/main_zh.yaml", now=NATIONAL_DAY)
        .press("1")
        .hears("今天是法定节假日")
        .press("1")
        .ends_with("voicemail"))


# ------------------------------------------------------------------ hangups

def test_caller_hanging_up_mid_login_leaves_a_trace():
    """A caller who hangs up while typing the PIN ends as caller_hangup, path kept."""
    c = (call("flows/main.yaml", now=OPEN)
         .press("1")
         .press("100001#")
         .hangup()
         .ends_with("caller_hangup")
         .visited("auth"))
    assert c.steps[-1] == "auth"
    assert c.outcome.step == "auth"


def test_caller_hanging_up_in_the_queue_stays_queued():
    """Hanging up while waiting for an agent is still a queued call (for the reports)."""
    english_customer("100001", "1234").press("0").hangup().ends_with("queued", target="vip")
