"""Which part of a recording a question is about: time words, then the transcript's words."""

from __future__ import annotations

import pytest

from app.pipeline.context import Line
from app.pipeline.timespan import keyword_span, keywords, question_span, relevant_span

D = 600.0  # a ten-minute recording


@pytest.mark.parametrize("question, span", [
    ("What is on screen at 2:30?", (120, 180)),
    ("what happened at [1:02:03]?", (540, 600)),          # past the end: the last window
    ("In the first minute, who spoke?", (0, 60)),
    ("during the first two minutes", (0, 120)),
    ("first 1 minute 30 seconds", (0, 90)),
    ("What was said in the last 30 seconds?", (570, 600)),
    ("the final 45 seconds", (555, 600)),
    ("the last minute", (540, 600)),
    ("What did they conclude at the end?", (540, 600)),
    ("towards the end of the video", (540, 600)),
    ("What was shown at the beginning?", (0, 60)),
    ("between 1:00 and 2:15", (60, 135)),
    ("from [01:10] to [01:40]", (70, 100)),
    ("in the second half", (300, 600)),
    ("in the first half", (0, 300)),
    ("in the middle", (270, 330)),
    ("after 5 minutes", (300, 360)),
    ("what happened after 4:00", (240, 300)),
    ("before 2:00", (60, 120)),
    ("at 90 seconds", (60, 120)),
    ("in minute 3", (120, 180)),
    ("during the third minute", (120, 180)),
    ("two minutes before the end", (450, 510)),
])
def test_time_words(question, span):
    assert question_span(question, D, window=60) == pytest.approx(span)


@pytest.mark.parametrize("question", ["What did we decide about the budget?", "Who was there?",
                                      "What is the first thing on the agenda?", "Summarize it"])
def test_no_time_words(question):
    assert question_span(question, D, 60) is None


def test_window_is_clipped_to_short_recordings():
    assert question_span("at 0:05", 8.0, 60) == (0.0, 8.0)
    assert question_span("at the end", 0.0, 60) is None


LINES = [Line(i * 10.0, i * 10 + 8.0, t) for i, t in enumerate([
    "hello everyone", "the weather is nice", "now the budget is too high", "we cut budgets for travel",
    "coffee break", "the launch date moves", "thank you all"])]


def test_keywords_and_the_span_that_mentions_them():
    assert keywords("What did we decide about the budget in the first minute?") == ["decide", "budget"]
    a, b = keyword_span(LINES, "What about the budget?", 30)
    assert a <= 20 and b >= 38 and b - a == pytest.approx(30)       # both budget lines, plural included
    assert keyword_span(LINES, "launch?", 20) == pytest.approx((44, 64))
    assert keyword_span(LINES, "What about zebras?", 30) is None
    # time words win over words
    assert relevant_span(LINES, "the budget at the end", 70, 20) == (50, 70)
    assert keywords("what was said at the end of the meeting?") == []
    assert relevant_span(LINES, "the budget", 70, 30) == keyword_span(LINES, "the budget", 30)
