"""Video questions: a video becomes a session (transcript + frames), questions see the right span.

Real parts: videos written with PyAV (H.264 + AAC), espeak-ng speech, the tiny
Gemma 4 transcribing and answering, a real SQLite library.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.engine.engine import Engine
from app.engine.errors import EngineError
from app.engine.messages import Text
from app.library import Library
from app.media.audio import MediaError, write_wav
from app.media.video import sample_frames, scene_difference, thumb
from app.pipeline.video import FrameOptions, ask_video, find_video_session, import_video, plan_video, video_messages
from tests.support.audio import tone
from tests.support.engine import engine_config
from tests.support.media_factory import make_video
from tests.support.meetings import have_tools, make_meeting


@pytest.fixture
def lib(tmp_path):
    with Library.open(tmp_path / "data") as lib:
        yield lib


def scenes_video(path: Path, colours, seconds_each: float = 3.0, fps: int = 10, size=(320, 240),
                 audio: bool = False) -> Path:
    """Static scenes of solid colours with hard cuts (and a faint noise, as a camera gives)."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height = size
        v.pix_fmt = "yuv420p"
        for colour in colours:
            for _ in range(int(seconds_each * fps)):
                img = np.empty((size[1], size[0], 3), np.uint8)
                img[:] = colour
                img = np.clip(img.astype(np.int16) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
                for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
    return path


# -- sampling -----------------------------------------------------------------
def test_scene_mode_keeps_the_cuts_and_interval_mode_every_second(tmp_path):
    v = scenes_video(tmp_path / "s.mp4", [(200, 30, 30), (30, 200, 30), (30, 30, 200), (30, 30, 200)])
    scene = [t for t, _ in sample_frames(v, FrameOptions(mode="scene", max_gap=10))]
    assert scene == pytest.approx([0.0, 3.0, 6.0], abs=0.11)   # the 4th scene repeats the 3rd: no frame
    gap = [t for t, _ in sample_frames(v, FrameOptions(mode="scene", max_gap=2.0))]
    assert gap == pytest.approx([0.0, 2.0, 3.0, 5.0, 6.0, 8.0, 10.0], abs=0.11)
    every = [t for t, im in sample_frames(v, FrameOptions(mode="interval", interval=1.0))]
    assert every == pytest.approx([float(i) for i in range(12)], abs=0.11)


def test_scene_difference_measure(tmp_path):
    import av

    v = scenes_video(tmp_path / "s.mp4", [(0, 0, 0), (255, 255, 255)], seconds_each=0.5)
    with av.open(str(v)) as c:
        frames = [thumb(f) for f in c.decode(video=0)]
    assert frames[0].shape == (18, 32)
    assert scene_difference(frames[0], frames[1]) < 0.02
    assert scene_difference(frames[0], frames[-1]) > 0.8


# -- import -------------------------------------------------------------------
@pytest.fixture(scope="module")
def speech_video(tmp_path_factory):
    if not have_tools():
        pytest.skip("needs espeak-ng and sox")
    d = tmp_path_factory.mktemp("video")
    m = make_meeting(d, 2, 6, seed=3)
    return make_video(d / "talk.mp4", m.duration, audio=m.samples(), fps=5, size=(640, 360)), m


def test_a_video_becomes_a_session_with_frames_and_segments(engine, lib, speech_video):
    video, meeting = speech_video
    stages = []
    sid = import_video(lib, engine, video, progress=lambda s, f: stages.append(s))
    s = lib.get_session(sid)
    assert s.status == "ready" and s.kind == "file" and s.duration == pytest.approx(meeting.duration, abs=0.5)
    segs = lib.segments(sid)
    assert len(segs) >= 3 and all(g.speaker for g in segs)
    frames = lib.media(sid, "frame")
    offsets = [f.offset for f in frames]
    assert offsets == sorted(offsets) and offsets[0] == 0.0 and offsets[-1] >= meeting.duration - 2
    assert all(np.diff(offsets) >= 0.99)                       # never more than one a second
    assert all(lib.absolute(f).is_file() and f.width == 640 and f.height == 360 for f in frames)
    assert {"transcribe", "frames"} <= set(stages)
    # the same file again: the same session, nothing redone
    n_frames = len(frames)
    assert import_video(lib, engine, video) == sid == find_video_session(lib, video)
    assert len(lib.sessions()) == 1 and len(lib.media(sid, "frame")) == n_frames


def test_video_question_sees_frames_at_their_budget_and_the_transcript(engine, lib, speech_video):
    video, _ = speech_video
    sid = import_video(lib, engine, video)
    pieces = []
    ans = ask_video(lib, engine, sid, "What is shown on the screen?", frame_tokens=100, max_tokens=8,
                    on_piece=pieces.append)
    plan = ans.plan
    assert plan.how == "whole" and len(plan.frames) == len(lib.media(sid, "frame"))
    # 640x360 frames take ~120 tokens at the model's default; the budget brings each to <= 100
    assert len(ans.reply.media_tokens) == len(plan.frames) and max(ans.reply.media_tokens) <= 100
    system, user = video_messages(lib, plan, "What is shown on the screen?")
    texts = [p.text for p in user.parts if isinstance(p, Text)]
    assert plan.lines and texts[-2] == "Transcript:\n" + "\n".join(str(x) for x in plan.lines)
    assert texts[1] == "[00:00]" and texts[-1] == "Question: What is shown on the screen?"
    assert ans.reply.prompt_tokens <= engine.n_ctx and "".join(pieces).strip() == ans.text
    user, assistant = lib.chat(sid)
    assert user.attachments[0]["frames"] == len(plan.frames) and assistant.content == ans.text


def test_silent_video_gets_frames_only(engine, lib, tmp_path):
    v = scenes_video(tmp_path / "silent.mp4", [(10, 10, 10), (250, 250, 250)], seconds_each=2.0)
    sid = import_video(lib, engine, v)
    assert lib.segments(sid) == [] and len(lib.media(sid, "frame")) == 2
    assert lib.get_session(sid).status == "ready"


def test_long_video_question_picks_its_span(tiny_model, lib, tmp_path):
    v = make_video(tmp_path / "long.mp4", 90.0, fps=2, size=(320, 240),  # colour changes each frame
                   audio=np.zeros(0, np.float32))
    with Engine(tiny_model.model, tiny_model.mmproj, engine_config(2048)) as small:
        sid = import_video(lib, small, v, frame_opts=FrameOptions(mode="interval"))
        assert len(lib.media(sid, "frame")) == 90     # ~90 x 80 tokens: far more than 2,048
        lib.add_segments(sid, [{"start": 70, "end": 74, "text": "here is the quarterly revenue chart"},
                               {"start": 10, "end": 14, "text": "welcome to the demo"}])
        at = plan_video(lib, small, sid, "What is on screen at 0:45?", max_tokens=64)
        assert at.how == "time words" and at.span[0] < 45 < at.span[1]
        assert at.frames and all(at.span[0] - 0.5 <= f.offset <= at.span[1] + 0.5 for f in at.frames)
        end = plan_video(lib, small, sid, "What is shown at the end?", max_tokens=64)
        assert end.how == "time words" and end.span[1] == pytest.approx(90, abs=1)
        found = plan_video(lib, small, sid, "When do they show the revenue chart?", max_tokens=64)
        assert found.how == "search" and found.span[0] <= 70 and found.span[1] >= 74
        assert [x.text for x in found.lines] == ["here is the quarterly revenue chart"]
        over = plan_video(lib, small, sid, "Describe it.", max_tokens=64)
        assert over.how == "overview" and over.frames[0].offset < 20 and over.frames[-1].offset > 70
        ans = ask_video(lib, small, sid, "What is on screen at 0:45?", max_tokens=16)
        assert ans.reply.prompt_tokens + 16 <= 2048 and ans.excerpt[0] < 45 < ans.excerpt[1]


def test_bad_video_inputs_have_their_message_and_write_nothing(engine, lib, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(MediaError, match="not an audio or video file"):
        import_video(lib, engine, text)
    wav = write_wav(tmp_path / "only.wav", tone(1.0))
    with pytest.raises(MediaError, match="no video track"):
        import_video(lib, engine, wav)
    with pytest.raises(MediaError, match="file not found"):
        import_video(lib, engine, tmp_path / "missing.mp4")
    assert lib.sessions() == []


def test_a_video_question_needs_vision(tiny_model, lib, tmp_path):
    v = scenes_video(tmp_path / "s.mp4", [(0, 0, 0)], seconds_each=1.0)
    sid = import_video(lib, None, v)  # silent: no model needed to import
    with Engine(tiny_model.model, None, engine_config(1024)) as blind:
        with pytest.raises(EngineError, match="cannot see"):
            ask_video(lib, blind, sid, "What is shown?")
