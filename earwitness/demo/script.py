"""The demo data set as plain data: complaint calls whose words, speakers and timing are known.

Why plain data: the demo (``earwitness demo``) and the tests both need recordings whose
*truth* is known — who said what, in which language, how long the caller rang — so that the
transcription, diarization, SLA and QA code can be checked against it. The calls are modelled
on seed 000 (road rescue): a car with plate 京A12345 has a flat tyre on Beijing's Capital
Airport Expressway, work order WO-20261126-0007, driver Zhang arrives 50 minutes after the
promised time because he stopped to refuel and dispatch sent him the wrong way (with
positioning drift on the map). The same incident is in the GPX track of :mod:`.track`.

The texts are written as a transcript would show them (digits, plate, work-order number);
:mod:`.synth` derives what the speech engine actually pronounces from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Speaker = Literal["customer", "agent"]
Language = Literal["zh", "en"]

#: Stereo layout of every recording (see DESIGN.md "Recording"): the caller is channel 0.
CHANNEL_OF: dict[Speaker, int] = {"customer": 0, "agent": 1}


@dataclass(frozen=True)
class Turn:
    """One utterance: the transcript truth for one speaker.

    ``interrupts_s`` > 0 means this turn starts that many seconds *before* the previous turn
    ends — an agent cutting in on a shouting customer — so the recording has real overlap.
    """

    speaker: Speaker
    text: str
    language: Language
    interrupts_s: float = 0.0


@dataclass(frozen=True)
class Incident:
    """The facts an agent must capture in one go (seed 000: time, place, plate, order...)."""

    work_order: str
    plate: str
    place: str
    place_zh: str
    driver: str
    customer: str
    promised_minutes: int
    delay_minutes: int
    dispatcher_phone: str
    demand: str
    #: When the rescue was dispatched, relative to "now" (negative: in the past).
    dispatched_offset_s: float


@dataclass(frozen=True)
class CallScript:
    """One inbound complaint call: metadata the PBX would report plus the spoken turns.

    ``ring_wait_s`` is how long the caller heard ringback before an agent answered (the
    SLA input); ``start_offset_s`` is when the call entered the queue relative to "now".
    The recording itself begins at answer, so ring time is not part of the audio.
    """

    call_id: str
    title: str
    language: Language
    caller_number: str
    queue: str
    agent_name: str
    ring_wait_s: float
    start_offset_s: float
    angry: bool
    turns: tuple[Turn, ...]

    def started_at(self, now: datetime) -> datetime:
        """Absolute time the call entered the queue, given the demo's "now"."""
        return now + timedelta(seconds=self.start_offset_s)

    def answered_at(self, now: datetime) -> datetime:
        """Absolute time the agent answered (queue entry plus the ring wait)."""
        return self.started_at(now) + timedelta(seconds=self.ring_wait_s)

    def text_of(self, speaker: Speaker) -> str:
        """Everything one side said, in order — the per-channel transcript truth."""
        return " ".join(t.text for t in self.turns if t.speaker == speaker)


HOUR = 3600.0

INCIDENT = Incident(
    work_order="WO-20261126-0007",
    plate="京A12345",
    place="Capital Airport Expressway, Beijing (northbound, near the Wenyu River bridge)",
    place_zh="首都机场高速",
    driver="张师傅 (Zhang)",
    customer="李明 (Li Ming)",
    promised_minutes=30,
    delay_minutes=50,
    dispatcher_phone="138 0013 8000",
    demand="refund of the service fee, compensation for the missed flight, formal apology",
    dispatched_offset_s=-20 * HOUR,
)

_D = INCIDENT.dispatched_offset_s

EN_ANGRY = CallScript(
    call_id="demo-en-angry",
    title="Angry customer waiting on the airport expressway (English)",
    language="en",
    caller_number="13600001111",
    queue="complaints",
    agent_name="Lucy Zhao",
    ring_wait_s=21.0,
    start_offset_s=_D + 42 * 60,
    angry=True,
    turns=(
        Turn(
            "agent",
            "Thank you for calling road rescue complaints, this is Lucy. How can I help you?",
            "en",
        ),
        Turn(
            "customer",
            "Finally! We have been waiting on the airport expressway for forty minutes. "
            "You promised the truck in thirty minutes!",
            "en",
        ),
        Turn(
            "agent",
            "I am very sorry for the long wait, sir. May I have the work order number, please?",
            "en",
        ),
        Turn(
            "customer",
            "It is WO-20261126-0007, plate Jing A12345. The app shows your truck driving the "
            "wrong way, away from us. We are going to miss our flight and nobody tells us "
            "anything. This is ridiculous, I want to speak to your manager right now.",
            "en",
        ),
        Turn(
            "agent",
            "Sir, I understand, and I apologise. Dispatch sent the driver in the wrong "
            "direction. I have escalated your case: it is urgent, class A.",
            "en",
            interrupts_s=0.8,
        ),
        Turn("customer", "So when will he get here?", "en"),
        Turn(
            "agent",
            "The dispatcher will call you back within 10 minutes. "
            "His number is 138 0013 8000. Please keep your phone free.",
            "en",
        ),
        Turn("customer", "Ten minutes. If nobody calls, I am going to the media.", "en"),
        Turn(
            "agent",
            "You will get the call within 10 minutes, I promise. I am sorry again for the wait.",
            "en",
        ),
    ),
)

ZH_COMPLAINT = CallScript(
    call_id="demo-zh-complaint",
    title="李先生投诉救援迟到五十分钟 (Mandarin)",
    language="zh",
    caller_number="13912345678",
    queue="complaints",
    agent_name="陈静",
    ring_wait_s=4.0,
    start_offset_s=_D + 105 * 60,
    angry=False,
    turns=(
        Turn("agent", "您好，道路救援投诉专线，我是陈静，请问有什么可以帮您？", "zh"),
        Turn(
            "customer",
            "你好，我要投诉。今天下午我的车在首都机场高速爆胎了，说好三十分钟到，"
            "结果等了一个多小时！",
            "zh",
        ),
        Turn(
            "agent",
            "非常抱歉让您久等了。请问您的车牌号和救援工单号是多少？",
            "zh",
        ),
        Turn("customer", "车牌是京A12345，工单号是WO-20261126-0007。", "zh"),
        Turn("agent", "好的，请问救援司机是哪一位？", "zh"),
        Turn(
            "customer",
            "张师傅。他晚到了五十分钟，他说路上先去加了油，而且调度给他指错了方向。",
            "zh",
        ),
        Turn("agent", "明白。您的诉求是什么？", "zh"),
        Turn(
            "customer",
            "我误了航班。我要求退还服务费，赔偿机票损失，并且公司要正式道歉。",
            "zh",
        ),
        Turn(
            "agent",
            "我复述一下：今天下午四点半，首都机场高速，车牌京A12345，司机张师傅迟到五十分钟，"
            "您要求退款、赔偿机票并道歉。已经标记为特急A级，专职小组会在二十四小时内联系您。",
            "zh",
        ),
        Turn("customer", "好，我等你们的电话。", "zh"),
    ),
)

EN_FOLLOWUP = CallScript(
    call_id="demo-en-followup",
    title="Follow-up about the missed flight (English)",
    language="en",
    caller_number="18611112222",
    queue="complaints",
    agent_name="Tom Wu",
    ring_wait_s=12.0,
    start_offset_s=_D + 16 * HOUR,
    angry=False,
    turns=(
        Turn("agent", "Road rescue complaints, this is Tom. How can I help?", "en"),
        Turn(
            "customer",
            "Hello, I am calling about work order WO-20261126-0007 for Mr. Li. "
            "He missed his flight yesterday because the rescue truck was fifty minutes late.",
            "en",
        ),
        Turn(
            "agent",
            "Thank you. I can see the case. It is marked urgent, class A, and the complaints "
            "team took it within thirty minutes.",
            "en",
        ),
        Turn("customer", "The driver said he stopped to refuel on the way. Is that true?", "en"),
        Turn(
            "agent",
            "The GPS track shows a refuelling stop of about twelve minutes, and dispatch sent "
            "the truck in the wrong direction. The map also showed positioning drift.",
            "en",
        ),
        Turn("customer", "So what happens now?", "en"),
        Turn(
            "agent",
            "Manager Wang will call Mr. Li before noon today about a refund and the flight. "
            "We will also call back within 48 hours to check you are satisfied.",
            "en",
        ),
        Turn("customer", "All right, thank you.", "en"),
    ),
)

#: The whole demo set, oldest call first.
DEMO_CALLS: tuple[CallScript, ...] = (EN_ANGRY, ZH_COMPLAINT, EN_FOLLOWUP)


def get_call(call_id: str) -> CallScript:
    """Look a demo call up by id; a KeyError names the ids that exist."""
    for call in DEMO_CALLS:
        if call.call_id == call_id:
            return call
    raise KeyError(f"no demo call {call_id!r}; known: {[c.call_id for c in DEMO_CALLS]}")
