"""Session export: each format checked against its grammar, file names, safe writing."""

from __future__ import annotations

import html
import json
import os
import re
import unicodedata
from dataclasses import replace

import pytest

from app.library.export import (
    FORMATS,
    ExportError,
    export_session,
    render,
    safe_filename,
    to_json,
    to_markdown,
    to_srt,
    to_text,
    to_vtt,
)
from app.library.models import ActionItem, Segment, Session, SessionDetail, Speaker, Summary

STAR = "A*B <x>"


def seg(i: int, start: float, end: float, text: str, speaker: str | None = None) -> Segment:
    return Segment(i, 7, start, end, text, speaker_id=None, speaker=speaker)


def make_detail(**session: object) -> SessionDetail:
    s = Session(7, "Réunion – budget 2026", "2026-11-24T07:58:00Z", "recording",
                status="ready", duration=3625.5, language="fr")
    s = replace(s, **session)
    speakers = [Speaker(1, 7, "S1", "Zoé"), Speaker(2, 7, "S2", STAR), Speaker(3, 7, "S3", None)]
    segments = [
        seg(1, 0.0, 2.5, "Bonjour à tous — ça va ? 🎉", "Zoé"),
        seg(2, 2.5, 4.0, "Next --> arrow & <b>tags</b>", "Zoé"),
        seg(3, 4.0, 4.0, "zero length", STAR),                     # next cue starts at 4.2
        seg(4, 4.2, 6.0, "  \n\n ", "S3"),                          # blank: no cue
        seg(5, 4.2, 9.0, "First line\n\n\n  after blank lines", STAR),
        seg(6, 8.0, 12.0, "overlaps the one before", "S3"),        # overlap 8.0-9.0
        seg(7, 20.0, 20.0, "alone", "S3"),                         # zero length, nothing after
        seg(8, 3605.25, 3610.0, "past the hour", None),
        seg(9, 3620.0, 3619.0, "backwards", None),                 # end before start
    ]
    summaries = [Summary(1, 7, "minutes", "Old summary"),
                 Summary(2, 7, "minutes", "# Decisions\n\n- Budget **approved**\n- Hire two")]
    items = [ActionItem(1, 7, "Send the deck", owner="Zoé", due="2026-12-01"),
             ActionItem(2, 7, "Book *the* room", done=True),
             ActionItem(3, 7, "Call [vendor]", owner=STAR)]
    return SessionDetail(s, speakers, segments, summaries, items)


@pytest.fixture
def detail() -> SessionDetail:
    return make_detail()


# ---------------------------------------------------------------- strict validators

SRT_TIME = r"(\d{2}):([0-5]\d):([0-5]\d),(\d{3})"
SRT_TIMING = re.compile(rf"^{SRT_TIME} --> {SRT_TIME}$")
VTT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})"
VTT_TIMING = re.compile(rf"^{VTT_TIME} --> {VTT_TIME}(?: [^\n]*)?$")
VTT_TAG = re.compile(r"<(?:/?(?:c|i|b|u|ruby|rt|v|lang)(?:\.[^\s.<>&]+)*(?: [^>\n]*)?|/v)>")


def _ms(groups: tuple[str, ...]) -> int:
    h, m, s, ms = (int(g) for g in groups)
    return ((h * 60 + m) * 60 + s) * 1000 + ms


def parse_srt(text: str) -> list[tuple[int, int, list[str]]]:
    """SubRip, strictly: numbered blocks, each ended by one blank line, timing, >= 1 non-blank line."""
    assert "\r" not in text and "\n\n\n" not in text and not text.startswith("\n")
    assert text == "" or text.endswith("\n\n")
    cues = []
    for n, block in enumerate(text.split("\n\n")[:-1], 1):
        lines = block.split("\n")
        assert lines[0] == str(n), f"cue {n} numbered {lines[0]!r}"
        m = SRT_TIMING.match(lines[1])
        assert m, f"bad timing line {lines[1]!r}"
        start, end = _ms(m.groups()[:4]), _ms(m.groups()[4:])
        assert end > start, lines[1]
        assert len(lines) >= 3, f"cue {n} has no text"
        for line in lines[2:]:
            assert line.strip() and "-->" not in line, f"cue {n}: bad text line {line!r}"
        cues.append((start, end, lines[2:]))
    try:
        import srt  # a real parser where one is installed; not a dependency
    except ImportError:
        pass
    else:
        parsed = list(srt.parse(text, ignore_errors=False))
        assert [(p.index, p.content.split("\n")) for p in parsed] == \
            [(i, c[2]) for i, c in enumerate(cues, 1)]
        assert srt.compose(parsed, reindex=False, strict=True) == text
    return cues


def vtt_voice_and_text(payload: str) -> tuple[str | None, str]:
    """Split cue text into its voice annotation and plain text, checking its escapes and tags."""
    voice = None
    m = re.match(r"<v(?:\.[^\s.<>&]+)*[ \t]([^>\n]+)>", payload)
    if m:
        voice, payload = html.unescape(m.group(1)).strip(), payload[m.end():]
    assert not VTT_TAG.search(payload), f"unexpected tag in {payload!r}"
    assert "<" not in payload and ">" not in payload, payload
    assert re.fullmatch(r"(?:[^&]|&(?:amp|lt|gt|nbsp|lrm|rlm);)*", payload, re.S), payload
    return voice, html.unescape(payload)


def parse_vtt(text: str) -> list[tuple[int, int, str | None, list[str]]]:
    """WebVTT, strictly, for the parts used: header, cues (id, timing, text), no blank in a cue."""
    assert "\r" not in text and "\0" not in text and text.endswith("\n")
    blocks = text.rstrip("\n").split("\n\n")
    assert re.fullmatch(r"WEBVTT(?:[ \t][^\n]*)?", blocks[0]), "header"
    assert "\n\n\n" not in text
    cues = []
    for block in blocks[1:]:
        lines = block.split("\n")
        if not VTT_TIMING.match(lines[0]):
            assert "-->" not in lines[0], "identifier with -->"
            lines = lines[1:]
        m = VTT_TIMING.match(lines[0])
        assert m, f"bad timing line {lines[0]!r}"
        start, end = _ms(m.groups()[:4]), _ms(m.groups()[4:8])
        assert end > start, lines[0]
        assert len(lines) >= 2, "cue with no text"
        voice, first = vtt_voice_and_text(lines[1])
        texts = [first] + [vtt_voice_and_text(line)[1] for line in lines[2:]]
        for raw, plain in zip(lines[1:], texts):
            assert plain.strip() and "-->" not in raw, f"bad cue text line {raw!r}"
        cues.append((start, end, voice, texts))
    try:
        import webvtt  # a real parser where one is installed; not a dependency
    except ImportError:
        pass
    else:
        parsed = webvtt.from_string(text, strict=True)
        assert [(c.start_time.in_milliseconds(), c.end_time.in_milliseconds()) for c in parsed] == \
            [(s, e) for s, e, _, _ in cues]
        assert [c.voice and html.unescape(c.voice) for c in parsed] == [v for _, _, v, _ in cues]
    return cues


# ---------------------------------------------------------------- SubRip

def test_srt_is_valid_numbered_and_has_no_empty_cues(detail):
    cues = parse_srt(to_srt(detail))
    assert len(cues) == 8                                   # 9 segments, one blank
    starts = [c[0] for c in cues]
    assert starts == sorted(starts)                         # monotone, ends > starts checked
    texts = ["\n".join(c[2]) for c in cues]
    assert texts[0] == "Zoé: Bonjour à tous — ça va ? 🎉"
    assert texts[1] == "Zoé: Next -> arrow & <b>tags</b>"  # no --> left in user text
    assert texts[3] == f"{STAR}: First line after blank lines"
    assert texts[6] == "past the hour" and texts[7] == "backwards"  # no speaker: no prefix


def test_srt_timing_rules(detail):
    text = to_srt(detail)
    cues = parse_srt(text)
    assert (cues[2][0], cues[2][1]) == (4000, 4200)         # zero length: up to the next cue
    assert (cues[5][0], cues[5][1]) == (20_000, 20_500)     # zero length alone: 0.5 s
    assert cues[3][1] == 9000 and cues[4][0] == 8000        # overlap kept, starts still monotone
    assert (cues[7][0], cues[7][1]) == (3_620_000, 3_620_500)  # end before start
    assert "01:00:05,250 --> 01:00:10,000" in text          # 2-digit hours, padded ms
    assert "00:00:00,000 --> 00:00:02,500" in text


def test_srt_edge_cases():
    d = make_detail()
    d.segments = [seg(1, 1.0, 1.0, "a", "X"), seg(2, 1.0, 1.0, "b", "X"), seg(3, 1.0004, 2, "c"),
                  seg(4, float("nan"), float("inf"), "nan"), seg(5, -3, -1, "negative")]
    cues = parse_srt(to_srt(d))
    assert all(e > s >= 0 for s, e, _ in cues)
    assert [c[0] for c in cues] == sorted(c[0] for c in cues)
    d.segments = [seg(1, 0, 1, " "), seg(2, 1, 2, "\n\n")]
    assert to_srt(d) == "" and parse_vtt(to_vtt(d)) == []


def test_long_segments_become_several_short_cues():
    d = make_detail()
    words = " ".join(f"word{i}" for i in range(60))
    d.segments = [seg(1, 10.0, 40.0, words, "Zoé"), seg(2, 40.0, 40.1, words, "Zoé"),
                  seg(3, 41.0, 45.0, "x" * 100)]
    cues = parse_srt(to_srt(d))
    long_cues = [c for c in cues if c[0] < 40_000]
    assert len(long_cues) > 1 and long_cues[0][0] == 10_000 and long_cues[-1][1] == 40_000
    for (s1, e1, _), (s2, _, _) in zip(long_cues, long_cues[1:]):
        assert e1 == s2 and e1 - s1 >= 300                  # contiguous, none too short
    for _, _, lines in long_cues:
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines)
        assert lines[0].startswith("Zoé: ")                 # who speaks, on every cue
    joined = " ".join(" ".join(c[2]).removeprefix("Zoé: ") for c in long_cues)
    assert joined == words                                  # nothing lost or reordered
    short = [c for c in cues if 40_000 <= c[0] < 41_000]    # 0.1 s: too short to split
    assert len(short) == 1 and short[0][:2] == (40_000, 40_100)
    assert all(len(line) <= 42 for line in cues[-1][2])     # an unbreakable word is cut


# ---------------------------------------------------------------- WebVTT

def test_vtt_is_valid_with_escaped_voices(detail):
    text = to_vtt(detail)
    assert text.startswith("WEBVTT\n\n")
    cues = parse_vtt(text)
    assert len(cues) == 8
    assert [c[0] for c in cues] == sorted(c[0] for c in cues)
    assert [c[2] for c in cues] == ["Zoé", "Zoé", STAR, STAR, "S3", "S3", None, None]
    assert "<v A*B &lt;x&gt;>zero length" in text        # annotation holds no raw >
    assert cues[1][3] == ["Next --> arrow & <b>tags</b>"]   # escaped on the wire, intact to read
    assert "Next --&gt; arrow &amp; &lt;b&gt;tags&lt;/b&gt;" in text
    assert cues[3][3] == ["First line after blank lines"]
    assert "01:00:05.250 --> 01:00:10.000" in text and "00:00:04.000 --> 00:00:04.200" in text
    assert [c[:2] for c in cues] == [c[:2] for c in parse_srt(to_srt(detail))]


def test_vtt_hours_keep_growing():
    d = make_detail()
    d.segments = [seg(1, 100 * 3600 + 1.5, 100 * 3600 + 2, "late")]
    assert "100:00:01.500 --> 100:00:02.000" in to_vtt(d)
    parse_vtt(to_vtt(d))


# ---------------------------------------------------------------- Markdown and text

def test_markdown_has_header_summary_actions_and_grouped_paragraphs(detail):
    md = to_markdown(detail)
    assert md.startswith("# Réunion – budget 2026\n\n")
    assert "**Date:** 2026-11-24T07:58:00Z" in md and "**Duration:** 1:00:25" in md
    assert "**Kind:** recording" in md and "**Speakers:** Zoé, A\\*B \\<x>, S3" in md
    assert "## Summary\n\n### Decisions\n\n- Budget **approved**\n- Hire two" in md  # newest, as Markdown
    assert "Old summary" not in md
    assert "- [ ] Send the deck (owner: Zoé; due: 2026-12-01)" in md
    assert "- [x] Book \\*the\\* room" in md
    assert "- [ ] Call \\[vendor\\] (owner: A\\*B \\<x>)" in md
    transcript = md.split("## Transcript\n\n", 1)[1]
    paragraphs = transcript.strip().split("\n\n")
    assert paragraphs == [
        "**Zoé** [00:00]\nBonjour à tous — ça va ? 🎉 Next --> arrow & \\<b>tags\\</b>",
        "**A\\*B \\<x>** [00:04]\nzero length First line after blank lines",
        "**S3** [00:08]\noverlaps the one before alone",
        "[1:00:05]\npast the hour backwards",
    ]


def test_markdown_escapes_only_what_breaks_structure():
    d = make_detail(title="Plan # 2 *draft* #")
    d.segments = [seg(1, 0, 1, "# not a heading", "Bob"), seg(2, 1, 2, "nor a list", "Eve"),
                  seg(3, 2, 3, "- nor this", "Ann"), seg(4, 3, 4, "1. nor this. Fine!", "Bo"),
                  seg(5, 4, 5, "===", "Cy"), seg(6, 5, 6, "Q&A (v2.0) #1 done. &amp; stays", "Di")]
    md = to_markdown(d)
    assert md.startswith("# Plan # 2 \\*draft\\* \\#\n")
    assert "\n\\# not a heading\n" in md and "\n\\- nor this\n" in md
    assert "\n1\\. nor this. Fine!\n" in md and "\n\\===\n" in md
    assert "\nQ&A (v2.0) #1 done. \\&amp; stays\n" in md   # ordinary punctuation left alone
    d.segments = []
    assert to_markdown(d).rstrip().endswith("## Transcript\n\n*No transcript.*")


def test_plain_text(detail):
    txt = to_text(detail)
    lines = txt.splitlines()
    assert lines[0] == "Réunion – budget 2026"
    assert "2026-11-24T07:58:00Z" in lines[1] and lines[2] == ""
    assert lines[3:] == [
        "[00:00] Zoé: Bonjour à tous — ça va ? 🎉",
        "[00:02] Zoé: Next --> arrow & <b>tags</b>",
        f"[00:04] {STAR}: zero length",
        f"[00:04] {STAR}: First line after blank lines",
        "[00:08] S3: overlaps the one before",
        "[00:20] S3: alone",
        "[1:00:05] past the hour",
        "[1:00:20] backwards",
    ]


# ---------------------------------------------------------------- JSON and dispatch

def test_json_round_trips(detail):
    text = to_json(detail)
    data = json.loads(text)
    assert data.pop("format") == "minutely-session" and data.pop("version") == 1
    assert data == json.loads(detail.to_json())
    assert "Réunion – budget 2026" in text                  # UTF-8, not \u escapes
    back = SessionDetail(Session(**data["session"]), [Speaker(**x) for x in data["speakers"]],
                         [Segment(**x) for x in data["segments"]],
                         [Summary(**x) for x in data["summaries"]],
                         [ActionItem(**x) for x in data["action_items"]], data["media"])
    assert back == detail
    assert to_json(back) == text                            # stable


def test_json_never_writes_nan():
    d = make_detail(duration=float("nan"))
    d.segments = [seg(1, 0, float("inf"), "x")]
    data = json.loads(to_json(d), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert data["session"]["duration"] is None and data["segments"][0]["end"] is None


def test_render_dispatches_and_rejects_unknown_formats(detail):
    assert FORMATS == ("md", "txt", "srt", "vtt", "json")
    for fmt, fn in zip(FORMATS, (to_markdown, to_text, to_srt, to_vtt, to_json)):
        assert render(detail, fmt) == fn(detail)
    with pytest.raises(ExportError) as e:
        render(detail, "x")
    assert str(e.value) == "unknown format 'x'; use md, txt, srt, vtt or json"


# ---------------------------------------------------------------- file names

@pytest.mark.parametrize("title, ext, expected", [
    ("Réunion – budget 2026", "md", "Réunion – budget 2026.md"),
    ("Stand-up", "srt", "Stand-up.srt"),
    ("CON", "txt", "_CON.txt"),
    ("con.backup", "md", "_con.backup.md"),
    ("lpt9", "vtt", "_lpt9.vtt"),
    ("COM1 ", "json", "_COM1.json"),
    ("CONSOLE", "md", "CONSOLE.md"),
    ("a/b\\c", "md", "a_b_c.md"),
    ('x<>:"|?*y', "md", "x_______y.md"),
    ("../../etc/passwd", "md", "_.._etc_passwd.md"),
    ("..", "md", "session.md"),
    ("/", "md", "session.md"),
    ("", "md", "session.md"),
    ("   ", "txt", "session.txt"),
    (" .hidden. ", "md", "hidden.md"),
    ("tab\there\nnew\x00line\x7f", "md", "tab here newline.md"),
    ("evil\u202egpj.exe", "md", "evilgpj.exe.md"),
    ("Launch 🚀 review", "md", "Launch 🚀 review.md"),
    ("notes", ".md", "notes.md"),
])
def test_safe_filename_cases(title, ext, expected):
    assert safe_filename(title, ext) == expected


def test_safe_filename_caps_length_in_utf8_bytes():
    for title in ("a" * 500, "é" * 500, "🎉" * 200, "👩‍👩‍👧" * 40, "e\u0301" * 200):
        name = safe_filename(title, "md")
        stem = name.removesuffix(".md")
        assert 0 < len(stem.encode()) <= 120 and name.endswith(".md")
        assert unicodedata.normalize("NFC", title).startswith(stem) and not stem.endswith("\u200d")
    assert safe_filename("e\u0301" * 200, "md").removesuffix(".md") == "\u00e9" * 60  # NFC
    assert not safe_filename("x" * 119 + " tail", "md").removesuffix(".md").endswith(" ")


# ---------------------------------------------------------------- writing

def test_export_into_a_folder_uses_the_title_and_numbers_duplicates(detail, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    first = export_session(detail, "md", out)
    assert first == out / "Réunion – budget 2026.md"
    assert first.read_text(encoding="utf-8") == to_markdown(detail)
    second = export_session(detail, "md", out)
    third = export_session(detail, "md", out)
    assert (second.name, third.name) == ("Réunion – budget 2026 (2).md", "Réunion – budget 2026 (3).md")
    assert first.read_text(encoding="utf-8") == to_markdown(detail)   # never overwritten
    assert sorted(p.name for p in out.iterdir()) == sorted([first.name, second.name, third.name])
    untitled = export_session(make_detail(title="  "), "srt", out)
    assert untitled.name == "session-7.srt"


def test_export_to_a_file_path_sanitizes_and_keeps_the_folder(detail, tmp_path):
    path = export_session(detail, "vtt", tmp_path / "talk.vtt")
    assert path == tmp_path / "talk.vtt" and parse_vtt(path.read_text(encoding="utf-8"))
    assert export_session(detail, "vtt", tmp_path / "talk.vtt").name == "talk (2).vtt"
    assert export_session(detail, "txt", tmp_path / "notes").name == "notes.txt"
    assert export_session(detail, "json", tmp_path / "CON.json").name == "_CON.json"
    assert export_session(detail, "srt", tmp_path / 'a:b?.srt').name == "a_b_.srt"
    assert {p.parent for p in tmp_path.iterdir()} == {tmp_path}


def test_export_titles_cannot_escape_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for title in ("../../evil", "/etc/passwd", "..\\..\\evil", "sub/../../evil"):
        path = export_session(make_detail(title=title), "txt", out)
        assert path.parent == out and path.resolve().parent == out.resolve()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_export_refuses_traversal_and_symlink_escape(detail, tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "sub").mkdir()
    with pytest.raises(ExportError, match=r"'\.\.'"):
        export_session(detail, "md", out / ".." / "outside" / "x.md")
    with pytest.raises(ExportError, match=r"'\.\.'"):
        export_session(detail, "md", out / "sub" / "..")
    (out / "link.md").symlink_to(outside / "target.md")          # dangling, leads outside
    with pytest.raises(ExportError, match="outside") as e:
        export_session(detail, "md", out / "link.md")
    assert "\n" not in str(e.value)
    (out / "Réunion – budget 2026.md").symlink_to(outside / "victim.md")
    (outside / "victim.md").write_text("keep", encoding="utf-8")
    with pytest.raises(ExportError, match="outside"):
        export_session(detail, "md", out)
    assert (outside / "victim.md").read_text(encoding="utf-8") == "keep"
    assert sorted(p.name for p in outside.iterdir()) == ["victim.md"]
    (out / "inside.md").write_text("mine", encoding="utf-8")
    (out / "alias.md").symlink_to(out / "inside.md")               # stays inside: just taken
    assert export_session(detail, "md", out / "alias.md").name == "alias (2).md"
    assert (out / "inside.md").read_text(encoding="utf-8") == "mine"


def test_export_into_a_symlinked_folder_is_allowed(detail, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "docs").symlink_to(real, target_is_directory=True)
    path = export_session(detail, "txt", tmp_path / "docs")
    assert path.parent == tmp_path / "docs" and (real / path.name).is_file()


def test_export_errors_are_one_line(detail, tmp_path):
    with pytest.raises(ExportError, match="unknown format 'pdf'"):
        export_session(detail, "pdf", tmp_path)
    with pytest.raises(ExportError, match="folder not found"):
        export_session(detail, "md", tmp_path / "missing" / "x.md")
    assert list(tmp_path.iterdir()) == []
    if os.name == "posix" and os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(ExportError, match="cannot write"):
                export_session(detail, "md", ro)
        finally:
            ro.chmod(0o700)


def test_every_format_exports(detail, tmp_path):
    for fmt in FORMATS:
        path = export_session(detail, fmt, tmp_path)
        assert path.suffix == f".{fmt}" and path.read_text(encoding="utf-8") == render(detail, fmt)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
