"""Cancel belongs to a request, not to the engine.

Live transcription shares the loaded model with file jobs (``ModelService.shared_engine``). The
user cancelling a file job must stop that job and nothing else: a live utterance waiting for the
model or being answered is neither cut short nor lost, and a live call must not swallow the cancel
meant for the file job. And a batch of utterances must not throw away a chat's reusable prefix.
"""

from __future__ import annotations

import threading

import pytest

from app.engine.cancel import CancelToken
from app.engine.engine import Engine
from app.engine.host import EngineHost
from app.engine.messages import Audio, Message
from app.library import Library
from app.pipeline.live import LiveTranscriber
from app.pipeline.transcribe import TranscribeOptions
from tests.support.audio import tone
from tests.support.engine import engine_config
from tests.support.meetings import transcript

LONG = [{"role": "user", "content": "Count to ten thousand, one number per line."}]


@pytest.fixture(scope="module")
def meeting(tmp_path_factory):
    from tests.support.meetings import have_tools, make_meeting

    if not have_tools():
        pytest.skip("espeak-ng and sox are needed for speech")
    return make_meeting(tmp_path_factory.mktemp("cancel-meeting"), 2, 4, seed=5, gap=(0.5, 0.9))


def feed(live: LiveTranscriber, x, block: int = 800) -> None:
    for i in range(0, len(x), block):
        live.feed("mic", i, x[i:i + block])


def test_cancelling_a_file_job_during_a_live_recording_loses_no_live_utterance(qtbot, tmp_path, tiny_model,
                                                                              meeting):
    from app.ui.tasks import CANCELLED, ModelService

    host = EngineHost(tiny_model.model, tiny_model.mmproj, engine_config(8192))
    service = ModelService(tmp_path / "data", settings_fn=lambda: None, engine_factory=lambda: host)
    try:
        service.shared_engine()  # loaded: tasks run at once
        generating = threading.Event()
        file_replies = []

        def file_job(ctx):  # long answers until cancelled, as a summary of a long meeting would be
            while True:
                s = ctx.engine.stream(LONG, max_tokens=2000, ignore_eos=True)
                for _piece in s:
                    generating.set()
                file_replies.append(s.reply)
                ctx.check()  # raises Cancelled once the task is cancelled

        task = service.run("a long answer", file_job)
        assert generating.wait(60), "the file job never started generating"

        replies, entered = [], threading.Event()

        class Watch:  # the shared engine, recording what live transcription got back
            def chat_batch(self, conversations, **kw):
                entered.set()
                out = service.shared_engine().chat_batch(conversations, **kw)
                replies.extend(out)
                return out

        lib = Library.open(tmp_path / "lib")
        sid = lib.create_session("live", "recording", status="recording").id
        live = LiveTranscriber(lib, sid, Watch(), TranscribeOptions(parallel=2))
        live.set_tracks(["mic"])
        live.start()
        feed(live, meeting.samples())
        assert entered.wait(60), "live transcription never asked the model"
        assert not task.finished  # the file job still holds the model: the live batch waits for it
        task.cancel()
        qtbot.waitUntil(lambda: task.finished, timeout=60_000)
        assert task.state == CANCELLED
        # the cancel reached the file job's request in flight (a live call did not swallow it)
        assert file_replies[-1].finish_reason == "cancelled"

        stats = live.finish(None, speakers=None, timeout=120)
        assert stats.utterances > 0 and stats.transcribed == stats.utterances
        assert stats.failed == 0
        assert replies and all(r.finish_reason != "cancelled" for r in replies)  # live was not cut
        assert len(lib.segments(sid)) == stats.segments == sum(1 for r in replies if r.text.strip())
        lib.close()
    finally:
        service.shutdown()
        host.close()


# --- the engine's side --------------------------------------------------------------------------

def test_a_token_cancels_its_own_request_only(engine: Engine):
    """Two requests on one engine: cancelling one's token stops it, the other runs to the end."""
    engine.reset()
    mine, other = CancelToken(), CancelToken()
    other.cancel()  # cancelled before it started: it never runs
    r = engine.chat(LONG, max_tokens=40, ignore_eos=True, cancel=mine)
    assert r.finish_reason == "length" and r.generated_tokens == 40
    assert engine.chat(LONG, max_tokens=40, cancel=other).finish_reason == "cancelled"
    s = engine.stream(LONG, max_tokens=4000, ignore_eos=True, cancel=mine)
    for i, _ in enumerate(s):
        if i == 5:
            mine.cancel()
    assert s.reply.finish_reason == "cancelled" and s.reply.generated_tokens < 4000
    # a batch with a fresh token is untouched by the old, cancelled ones
    outs = engine.chat_batch([LONG, LONG], max_tokens=8, ignore_eos=True, cancel=CancelToken())
    assert [o.finish_reason for o in outs] == ["length", "length"]


def test_a_cancel_while_waiting_for_the_engine_is_kept(tiny_model):
    """A request cancelled while another holds the model process never runs; the one running
    is not touched."""
    with EngineHost(tiny_model.model, tiny_model.mmproj, engine_config(4096)) as host:
        host.start()
        running, waiting = CancelToken(), CancelToken()
        first = host.stream(LONG, max_tokens=3000, ignore_eos=True, cancel=running)
        it = iter(first)
        next(it)  # the first request holds the model now
        result = {}
        t = threading.Thread(target=lambda: result.update(r=host.chat(LONG, max_tokens=10, cancel=waiting)))
        t.start()
        waiting.cancel()
        for _ in it:  # the first request runs to its end, untouched
            pass
        t.join(60)
        assert first.reply.finish_reason == "length" and first.reply.generated_tokens == 3000
        assert result["r"].finish_reason == "cancelled" and result["r"].generated_tokens == 0


def test_a_batch_keeps_the_chat_prefix(engine: Engine):
    """Live transcription during a meeting must not throw away the chat's reusable prefix."""
    engine.reset()
    long = [{"role": "system", "content": transcript(60)}]
    first = engine.chat(long + [{"role": "user", "content": "Who spoke first?"}], max_tokens=4)
    utterance = [Message.user("Transcribe.", Audio(tone(1.0)))]
    engine.chat_batch([utterance, utterance], max_tokens=4)
    again = engine.chat(long + [{"role": "user", "content": "Who spoke last?"}], max_tokens=4)
    assert first.prompt_tokens > 1000
    assert again.reused_tokens > 0.95 * again.prompt_tokens  # the transcript was not evaluated again
