"""Call transcripts for the QA tests whose truth is known by construction.

A *model call* in each language follows every default rule and breaks no timing check;
each variant changes exactly one thing (an interruption, a long silence, a vague promise,
a forbidden phrase, a missing apology, an urgent request not escalated) and must fail
exactly the rule or check that names it.
"""

from __future__ import annotations

from dataclasses import replace

from earwitness.qa.audit import Line

EN_MODEL = [
    Line(1, "agent", 0.5, 4.0,
         "Thank you for calling road rescue complaints, this is Lucy. How can I help you?"),
    Line(2, "customer", 4.6, 10.0,
         "My rescue truck is forty minutes late and I am stuck on the expressway with my child."),
    Line(3, "agent", 10.5, 16.0,
         "I am very sorry, I understand how stressful that is. I have marked your case as urgent."),
    Line(4, "customer", 16.5, 19.0,
         "Plate A12345, work order WO-20261126-0007. When will it come?"),
    Line(5, "agent", 19.5, 26.0,
         "Let me confirm: plate A12345, order WO-20261126-0007. The delay is because dispatch "
         "sent the driver the wrong way."),
    Line(6, "agent", 26.5, 32.0,
         "I will personally follow this up. The dispatcher will call you within 10 minutes, "
         "his number is 138 0013 8000."),
    Line(7, "agent", 32.3, 35.0, "We will refund the service fee."),
    Line(8, "customer", 35.5, 37.0, "Okay, thank you."),
    Line(9, "agent", 37.5, 40.0, "Is there anything else I can help you with? Goodbye."),
]  # fmt: skip

ZH_MODEL = [
    Line(1, "agent", 0.5, 4.0, "您好，道路救援投诉专线，我是陈静，请问有什么可以帮您？"),
    Line(2, "customer", 4.6, 10.0, "我的车在高速上爆胎了，救援车晚到了四十分钟，孩子还在车上！"),
    Line(3, "agent", 10.5, 16.0, "非常抱歉让您久等了，我理解您的心情。我已经标记为特急A级。"),
    Line(4, "customer", 16.5, 19.0, "车牌是京A12345，什么时候能到？"),
    Line(5, "agent", 19.5, 26.0, "跟您确认一下，车牌京A12345。原因是调度指错了方向。"),
    Line(6, "agent", 26.5, 32.0, "我会亲自跟进，调度员十分钟内给您回电话，他的电话是13800138000。"),
    Line(7, "agent", 32.3, 35.0, "服务费我们给您退款。"),
    Line(8, "customer", 35.5, 37.0, "好的，谢谢。"),
    Line(9, "agent", 37.5, 40.0, "请问还有其他问题吗？再见。"),
]  # fmt: skip


def with_text(lines: list[Line], segment_id: int, text: str) -> list[Line]:
    return [replace(x, text=text) if x.segment_id == segment_id else x for x in lines]


def shifted(lines: list[Line], from_id: int, seconds: float) -> list[Line]:
    """Every line from ``from_id`` on moved by ``seconds`` (a silence before it)."""
    return [
        replace(x, start_s=x.start_s + seconds, end_s=x.end_s + seconds)
        if x.segment_id >= from_id
        else x
        for x in lines
    ]


def interrupted(lines: list[Line], segment_id: int, start_s: float) -> list[Line]:
    """Line ``segment_id`` starts at ``start_s`` (inside the previous customer line)."""
    return [replace(x, start_s=start_s) if x.segment_id == segment_id else x for x in lines]


#: (name, call, the one rule or check it must fail) — English.
EN_BROKEN = [
    ("interrupts", interrupted(EN_MODEL, 3, 9.0), "no_interruptions"),
    ("dead_air", shifted(EN_MODEL, 6, 15.0), "no_dead_air"),
    ("vague_promise",
     with_text(EN_MODEL, 6, EN_MODEL[5].text + " We will fix it as soon as possible."),
     "no_vague_promise"),
    ("blame", with_text(EN_MODEL, 7, "That is not my department, but we will refund the fee."),
     "no_blame"),
    ("no_apology", with_text(EN_MODEL, 3, "I understand how stressful that is. I have marked "
                                          "your case as urgent."), "apology"),
    ("not_escalated", with_text(EN_MODEL, 3, "I am very sorry, I understand how stressful that "
                                             "is."), "urgent_escalated"),
    ("slow_ticket", with_text(EN_MODEL, 7, "We will refund the fee; we will process it in 72 "
                                           "hours."), "no_slow_ticket_when_urgent"),
    ("no_commitment", with_text(EN_MODEL, 6, "I will personally follow this up."),
     "precise_commitment"),
]  # fmt: skip

#: The same for Mandarin.
ZH_BROKEN = [
    ("interrupts", interrupted(ZH_MODEL, 3, 9.0), "no_interruptions"),
    ("dead_air", shifted(ZH_MODEL, 6, 15.0), "no_dead_air"),
    ("vague_promise", with_text(ZH_MODEL, 7, "服务费我们给您退款，会尽快处理。"),
     "no_vague_promise"),
    ("blame", with_text(ZH_MODEL, 7, "这不归我们管，不过服务费给您退款。"), "no_blame"),
    ("no_apology", with_text(ZH_MODEL, 3, "我理解您的心情。我已经标记为特急A级。"), "apology"),
    ("not_escalated", with_text(ZH_MODEL, 3, "非常抱歉让您久等了，我理解您的心情。"),
     "urgent_escalated"),
]  # fmt: skip
