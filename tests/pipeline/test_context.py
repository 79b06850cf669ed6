"""Transcript lines and token-budget splitting (app/pipeline/context.py)."""

from __future__ import annotations

import pytest

from app.library import Library, NotFound
from app.pipeline.context import (
    Line,
    find_times,
    format_time,
    parse_time,
    render,
    split_to_budget,
    text_counter,
    transcript_lines,
)


def test_times_render_and_parse_back():
    assert format_time(0) == "00:00"
    assert format_time(754.9) == "12:34"
    assert format_time(3723) == "1:02:03"
    assert parse_time("see [12:34] and [1:02:03]") == 754
    assert find_times("see [12:34] and [1:02:03], not 12:34") == [754, 3723]
    assert parse_time("no time here") is None


def test_transcript_lines_use_speaker_names_and_times(tmp_path):
    with Library.open(tmp_path) as lib:
        s = lib.create_session("Weekly", "file")
        lib.add_segments(s.id, [
            {"start": 3.2, "end": 5.0, "text": "  Hello   all ", "speaker": "S1"},
            {"start": 65.0, "end": 70.0, "text": "Budget is fine", "speaker": "S2"},
            {"start": 3700.0, "end": 3705.0, "text": "Bye"},
            {"start": 80.0, "end": 81.0, "text": "   "},
        ])
        lib.rename_speaker(s.id, "S2", "Ben")
        lines = transcript_lines(lib, s.id)
        assert [str(x) for x in lines] == ["[00:03] S1: Hello all", "[01:05] Ben: Budget is fine",
                                           "[1:01:40] Bye"]
        assert [str(x) for x in transcript_lines(lib, s.id, 60, 100)] == ["[01:05] Ben: Budget is fine"]
        with pytest.raises(NotFound):
            transcript_lines(lib, 999)


def _lines(n):
    return [Line(i * 10.0, i * 10.0 + 9, f"we talk about item {i} of the budget report", f"S{i % 3 + 1}")
            for i in range(n)]


def test_split_keeps_order_and_every_part_fits_with_the_real_tokenizer(engine):
    count = text_counter(engine)
    lines = _lines(120)
    total = count(render(lines))
    parts = split_to_budget(lines, count, total // 5)
    assert len(parts) >= 5
    assert [x for p in parts for x in p] == lines  # nothing lost, time order kept
    assert all(count(render(p)) <= total // 5 for p in parts)
    assert split_to_budget(lines, count, total + 10) == [lines]
    assert split_to_budget([], count, 100) == []


def test_split_cuts_a_line_longer_than_the_budget(engine):
    count = text_counter(engine)
    long = Line(5.0, 60.0, " ".join(f"word{i}" for i in range(400)), "Ana")
    parts = split_to_budget([long, "short line"], count, 60)
    assert all(count(render(p)) <= 60 for p in parts)
    pieces = [p[0] for p in parts[:-1]]
    assert all(isinstance(x, Line) and x.speaker == "Ana" and x.start == 5.0 for x in pieces)
    assert " ".join(x.text for x in pieces).split() == long.text.split()
    assert parts[-1] == ["short line"]


def test_split_costs_few_tokenizer_calls():
    calls = []

    def count(text):
        calls.append(1)
        return len(text) // 4

    lines = [f"[00:{i % 60:02d}] S1: some words said in the meeting number {i}" for i in range(2000)]
    parts = split_to_budget(lines, count, 500)
    assert all(len(render(p)) // 4 <= 500 for p in parts)
    assert len(calls) <= 2 * len(parts) + 2
