"""AMI parse + call tracking: earwitness's parser and CallTracker vs asterisk-ami 0.1.7's parser.

The issue's benchmark: the same real Asterisk 22 bytes (tests/data/ami/*.raw, repeated to
~50,000 messages) through our whole live path — framing, event time, tracker state — against
only the baseline's parsing. A ratio near or above 1 means tracking costs nothing the PBX
link would notice.
"""

from __future__ import annotations

from benchmarks.bench_ami_parse import ROUNDS, baseline, chunks, load_stream, ours
from earwitness.telephony.ami.protocol import AmiMessage, event_time
from earwitness.telephony.tracker import CallTracker


def run() -> list[str]:
    pieces = chunks(load_stream()[0])
    best_ours = best_base = float("inf")
    n_ours = n_base = calls = 0
    for _ in range(ROUNDS):
        tracker = CallTracker()
        finished = 0

        def track(message: AmiMessage, tracker: CallTracker = tracker) -> None:
            nonlocal finished
            if message.kind != "event" or not tracker.wants(message.name):
                return
            at, source = event_time(message, max_skew_s=1e12)
            for call in tracker.handle(message, at, source):
                if call.ended_at is not None:
                    finished += 1
                    tracker.release(call)

        n_ours, t_ours = ours(pieces, track)
        n_base, t_base = baseline(pieces)
        best_ours, best_base = min(best_ours, t_ours), min(best_base, t_base)
        calls = finished
    ours_rate, base_rate = n_ours / best_ours, n_base / best_base
    return [
        f"ami_parse_track: ours {ours_rate:.0f} events/s (parsed + tracked, {calls} calls), "
        f"baseline {base_rate:.0f} events/s (asterisk-ami 0.1.7 parse only), "
        f"ratio {ours_rate / base_rate:.2f}"
    ]


if __name__ == "__main__":
    print("\n".join(run()))
