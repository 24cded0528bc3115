"""The speech benchmark's scoring (benchmarks/bench_speech.py) on hand-made text and times."""

from __future__ import annotations

import pytest

from benchmarks.bench_speech import (
    Span,
    en_number_words,
    match_utterances,
    ratio,
    score_text,
    tokens,
    zh_numeral_to_digits,
)


@pytest.mark.parametrize(
    ("run", "digits"),
    [
        ("二零一一", "2011"),  # digits without units: digit by digit
        ("一二", "12"),
        ("六", "6"),
        ("十五", "15"),
        ("二十一", "21"),
        ("四百零三", "403"),
        ("两千零一十七", "2017"),
        ("一亿二千万", "120000000"),
        ("十五万", "150000"),
        ("亿", "亿"),  # no digit: a word (过亿), kept
        ("千万", "千万"),
    ],
)
def test_chinese_numerals_become_digits(run: str, digits: str) -> None:
    assert zh_numeral_to_digits(run) == digits


def test_fleurs_digits_and_aishell_characters_score_the_same() -> None:
    # FLEURS keeps digits, Whisper (and AISHELL) may write characters, traditional ones too
    ref = "桥下垂直净空 15 米该项目于 2011 年 8 月完工"
    assert score_text(ref, "橋下垂直淨空十五米，該項目於二零一一年八月完工。", "zh").errors == 0
    assert score_text(ref, "桥下垂直净空15米该项目于2011年8月完工", "zh").errors == 0
    # a wrong number is still an error, and one token, like a Latin word
    assert score_text(ref, "桥下垂直净空16米该项目于2011年8月完工", "zh").errors == 1
    assert tokens("scotturb 403 路", "zh") == ["scotturb", "403", "路"]
    assert score_text("swapo 也在", "swappo也在", "zh").errors == 1


def test_chinese_cer_counts_characters_and_ignores_punctuation_and_spaces() -> None:
    score = score_text("目前总估值已过亿元", "目前 總估值，已過億", "zh")
    assert (score.errors, score.ref_tokens) == (1, 9)  # 元 deleted
    assert score.rate == pytest.approx(1 / 9)


def test_inaudible_mark_is_no_word() -> None:
    assert tokens("[inaudible] 也在", "zh") == ["也", "在"]
    score = score_text("stuff it into you", "stuff it [inaudible]", "en")
    assert (score.errors, score.ref_tokens) == (2, 4)


def test_english_numbers_spelled_or_written_score_the_same() -> None:
    assert en_number_words(42) == "forty two"
    assert en_number_words(1455) == "fourteen fifty five"
    assert en_number_words(1905) == "nineteen oh five"
    assert en_number_words(2011) == "two thousand eleven"
    assert en_number_words(403) == "four hundred three"
    ref = 'the Gutenberg, or "forty-two line Bible" of about fourteen fifty-five,'
    assert score_text(ref, "The Gutenberg or 42-line Bible of about 1455.", "en").errors == 0
    score = score_text("STUFF IT INTO YOU HIS BELLY COUNSELLED HIM", "Stuff it into you.", "en")
    assert (score.errors, score.ref_tokens) == (4, 8)


def test_utterance_found_needs_overlap_and_onset_within_tolerance() -> None:
    refs = [Span(1.0, 5.0, 0), Span(6.0, 9.0, 0), Span(6.0, 9.0, 1), Span(20.0, 22.0, 1)]
    hyps = [
        Span(1.3, 8.5, 0),  # covers both channel-0 utterances; starts near the first only
        Span(6.8, 9.0, 1),  # 0.8 s late
        Span(10.0, 11.0, 1),  # over no utterance: extra
        Span(20.1, 22.0, 0),  # right time, wrong channel: extra, and finds nothing
    ]
    match = match_utterances(refs, hyps)
    assert match.missed[0.5] == [1, 2, 3]
    assert match.missed[1.0] == [1, 3]
    assert match.extra == [2, 3]
    assert match.onset_errors[0] == pytest.approx(0.3)
    assert match.onset_errors[1] == pytest.approx(4.7)
    assert match.onset_errors[3] is None
    assert match.onset_mean == pytest.approx((0.3 + 4.7 + 0.8) / 3)
    assert match.onset_max == pytest.approx(4.7)


def test_segment_ending_at_the_onset_does_not_find_the_utterance() -> None:
    match = match_utterances([Span(5.0, 8.0)], [Span(4.6, 5.0)])  # touches, no overlap
    assert match.missed[0.5] == [0] and match.extra == [0]


def test_ratio_is_baseline_over_ours() -> None:
    assert ratio(0.12, 0.15) == "1.25"
    assert ratio(0.0, 0.0) == "1.00"
    assert ratio(0.0, 2.0) == "inf"
    assert ratio(None, 1.0) == "n/a"
