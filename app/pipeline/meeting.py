"""A recorded meeting: the session, the recorder, live transcription and screenshots together.

    m = Meeting(lib, mic="default", system="auto", engine=engine_or_factory_or_None,
                on_segment=..., on_level=..., on_notice=..., on_state=...)
    sid = m.start()            # creates the session (kind "recording", status "recording")
    m.wait_audio(timeout)      # state "starting" until the devices deliver audio, then "recording"
    m.pause(); m.resume()
    m.offer_screen(pil_image)  # from a screen grabber (any thread; never blocks)
    result = m.stop()          # finalizes the audio, drains live transcription, clusters speakers

    Meeting(lib, ..., continue_session=sid).start()   # record on into an existing session (a false
                               # auto-stop): a new part in `recording-2/`, its audio placed after the last

The audio is recorded into `media/<session id>/recording/` (a continued session: `recording-2/`, ...,
joined with every part at its offset into `media/<sid>/audio.wav`; see app/capture/tracks.py), so a
crash leaves a folder that `recover_unfinished(lib)` (run at every start of the app or the CLI)
finalizes into that same session. No Qt: callbacks are plain functions called from worker threads
(the recorder's writer thread for levels, the model thread for segments).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.capture.recorder import Recorder, RecordingError, RecordingResult, find_unfinished, recover
from app.capture.tracks import DONE_STATES, SIDECAR, is_live, join_wavs, read_sidecar
from app.library.models import SessionState
from app.pipeline.calendar import apply_event, session_options
from app.pipeline.live import LiveStats, LiveTranscriber
from app.pipeline.transcribe import TranscribeOptions

if TYPE_CHECKING:
    from app.capture.screenshots import ScreenKeeper

log = logging.getLogger("minutely.meeting")

RECORDING_DIR = "recording"
JOINED = "audio.wav"  # a continued session's audio: every part at its offset (media/<sid>/audio.wav)
JOINED_MARK = "joined"  # in a part's folder once it is in JOINED: its offset


@dataclass
class MeetingResult:
    session_id: int
    duration: float                     # seconds recorded (pauses excluded)
    recording: RecordingResult
    live: LiveStats | None              # None without live transcription
    screenshots: int                    # kept screen grabs
    notices: list[str] = field(default_factory=list)
    error: str | None = None            # why the recording ended by itself (a device lost), if it did


def default_title() -> str:
    return datetime.now().strftime("Meeting %Y-%m-%d %H:%M")


class Meeting:
    """One meeting being recorded. States: idle, starting (devices open, no audio yet: PulseAudio
    takes 0.4-2 s), recording, paused, finishing, stopped."""

    def __init__(self, lib, *, mic: str | None = "default", system: str | None = None, title: str | None = None,
                 engine: Any = None, options: TranscribeOptions | None = None,
                 on_segment: Callable[[Any], None] | None = None,
                 on_level: Callable[[str, float, float], None] | None = None,
                 on_notice: Callable[[str], None] | None = None,
                 on_state: Callable[[str], None] | None = None,
                 queue_size: int = 16, screen_options: dict[str, Any] | None = None, sd=None,
                 recorder_options: dict | None = None, continue_session: int | None = None):
        self.lib = lib
        self.mic, self.system, self.title = mic, system, title
        self.engine, self.options = engine, options or TranscribeOptions()
        self.on_segment, self.on_level, self.on_notice, self.on_state = on_segment, on_level, on_notice, on_state
        self.queue_size, self.screen_options = queue_size, screen_options or {}
        self._sd, self._rec_opts = sd, recorder_options or {}
        self.session_id: int | None = None
        self.recorder: Recorder | None = None
        self.live: LiveTranscriber | None = None
        self.notices: list[str] = []
        self.state = "idle"
        self._ended = threading.Event()  # the recorder stopped (by stop() or by itself)
        self._audio = threading.Event()  # every device has delivered audio
        self._state_lock = threading.RLock()  # state changes and their listener calls stay in order
        self._screens: collections.deque = collections.deque(maxlen=4)
        self._screen_evt = threading.Event()
        self._screen_t: threading.Thread | None = None
        self._keeper: ScreenKeeper | None = None
        self._stop_lock = threading.Lock()
        self._result: MeetingResult | None = None
        self._auto_title: str | None = None  # the title the app gave at start (default or the event's)
        self.continue_session = continue_session
        self.offset = 0.0  # where this part starts in the session (a continued session: its length before)
        self._part = RECORDING_DIR

    # --- state for the GUI --------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self.lib.media_dir(self.session_id, create=False) / self._part

    @property
    def position(self) -> float:
        """Seconds recorded so far (the timeline segments and screenshots use)."""
        return self.recorder.duration if self.recorder else 0.0

    @property
    def levels(self) -> dict[str, tuple[float, float]]:
        return self.recorder.levels if self.recorder else {}

    @property
    def tracks(self) -> list[str]:
        return self.recorder.tracks if self.recorder else []

    @property
    def overflows(self) -> int:
        return self.recorder.overflows if self.recorder else 0

    def live_stats(self) -> LiveStats | None:
        return self.live.snapshot() if self.live else None

    def wait_audio(self, timeout: float | None = None) -> bool:
        """True once audio flows (every device delivered its first block): "recording" from then
        on means it. False after `timeout`, or at once if the recording ended before any audio."""
        if self._audio.is_set():
            return True
        end = None if timeout is None else time.monotonic() + timeout
        while not self._ended.is_set():
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                break
            if self._audio.wait(0.05 if left is None else min(0.05, left)):
                return True
        return self._audio.is_set()

    def wait_ended(self, timeout: float | None = None) -> bool:
        """True once the recording has ended: stopped, or a device was lost (see `error`)."""
        return self._ended.wait(timeout)

    @property
    def error(self) -> str | None:
        return self.recorder.error if self.recorder else None

    # --- control ------------------------------------------------------------------------------
    def start(self) -> int:
        """Create the session and start recording; returns the session id. RecordingError (one
        line) if no device can be opened; then nothing is left behind."""
        if self.state != "idle":
            raise RecordingError("this meeting was already started")
        if self.continue_session is not None:
            return self._start_continued(self.continue_session)
        s = self.lib.create_session(self.title or default_title(), "recording", status=SessionState.RECORDING)
        self.session_id = s.id
        self._calendar(s.id)  # the event's title and attendees; their names become spelling hints
        recorder = self._prepare(s.id)
        try:
            recorder.start()
        except BaseException:
            self.lib.delete_session(s.id)  # removes the (empty) media folder too
            self.session_id = None
            self.state = "stopped"
            raise
        return self._started()

    def _prepare(self, sid: int, offset: float = 0.0) -> Recorder:
        """The recorder of this part, feeding live transcription (at ``offset`` in the session) when
        there is an engine."""
        if self.engine is not None:
            self.live = LiveTranscriber(self.lib, sid, self.engine, self.options, on_segment=self.on_segment,
                                        on_notice=self._notice, queue_size=self.queue_size, offset=offset)
        self.recorder = Recorder(self.folder, mic=self.mic, system=self.system, on_level=self.on_level,
                                 sd=self._sd, on_audio=self.live.feed if self.live else None,
                                 on_stop=self._recorder_stopped, on_ready=self._audio_flows, **self._rec_opts)
        return self.recorder

    def _started(self) -> int:
        assert self.recorder is not None and self.session_id is not None
        if self.live is not None:
            self.live.set_tracks(self.recorder.tracks)
            self.live.start()
        for n in self.recorder.notices:
            self._notice(n)
        with self._state_lock:  # the writer thread may have seen audio already
            self._set_state("recording" if self._audio.is_set() else "starting")
        return self.session_id

    def _start_continued(self, sid: int) -> int:
        """Record a further part into session `sid`, transcribed live like a fresh recording when
        there is an engine (its segments stored at the part's offset, after the first part's;
        speakers then clustered over the whole session). On failure the session is left as it was."""
        s = self.lib.get_session(sid)  # KeyError-like errors from the library if it is gone
        media = self.lib.media_dir(sid, create=True)
        n = 2
        while (media / f"{RECORDING_DIR}-{n}").exists():
            n += 1
        self.session_id, self._part, self.offset = sid, f"{RECORDING_DIR}-{n}", float(s.duration or 0.0)
        if self.engine is not None:
            self.options = session_options(self.lib, sid, self.options)  # its event's attendees, as before
        recorder = self._prepare(sid, self.offset)
        try:
            recorder.start()
        except BaseException:
            self.state = "stopped"
            raise
        self.lib.update_session(sid, status=SessionState.RECORDING)
        return self._started()

    def pause(self) -> None:
        if self.recorder and self.state == "recording":
            self.recorder.pause()
            self._set_state("paused")

    def resume(self) -> None:
        if self.recorder and self.state == "paused":
            self.recorder.resume()
            self._set_state("recording")

    def offer_screen(self, image, force: bool = False) -> None:
        """A screen grab (PIL image) taken now; kept if it changed enough, or if `force` (asked
        for by the user). Never blocks: storing happens on a helper thread. Grabs taken while
        paused are skipped unless forced."""
        if self.state not in ("recording", "paused") or (self.state == "paused" and not force):
            return
        self._screens.append((image, self.position, force))
        if self._screen_t is None:
            self._screen_t = threading.Thread(target=self._screen_loop, name="minutely-screens", daemon=True)
            self._screen_t.start()
        self._screen_evt.set()

    @property
    def screenshots(self) -> int:
        return len(self._keeper.kept) if self._keeper else 0

    def stop(self, timeout: float | None = None) -> MeetingResult:
        """Stop recording, finalize the audio, drain the live queue (and transcribe what it
        dropped), cluster speakers over the whole meeting. Blocks (seconds, longer with a slow
        model): call it off the GUI thread. `cancel()` from another thread cuts the draining short."""
        with self._stop_lock:
            if self._result is not None:
                return self._result
            if self.recorder is None or self.session_id is None:
                raise RecordingError("the meeting was never started")
            self._set_state("finishing")
            rec = self.recorder.stop()
            self._ended.set()
            if self._screen_t is not None:
                self._screens.append(None)
                self._screen_evt.set()
                self._screen_t.join(30)
            stats = None
            if self.continue_session is None:
                self._calendar(self.session_id, rec.duration)  # the whole span decides the event
            if self.live is not None:
                stats = self.live.finish(rec.mix, self.options.speakers, timeout)
            sid = self.session_id
            with self.lib.transaction():
                if rec.mix is not None:
                    self.lib.add_media(sid, rec.mix, "audio", self.offset)
                if self.offset:
                    self._join(sid)
                transcribed = stats is not None and stats.segments > 0 or bool(self.offset and self.lib.segments(sid))
                status = SessionState.READY if transcribed else \
                    (SessionState.NEW if rec.mix is not None or self.offset else SessionState.RECORDING)
                self.lib.update_session(sid, status=status, duration=self.offset + rec.duration)
            for n in rec.notices:
                if n not in self.notices:
                    self.notices.append(n)
            self._result = MeetingResult(sid, rec.duration, rec, stats, self.screenshots, list(self.notices),
                                         rec.error)
            self._set_state("stopped")
            return self._result

    def cancel(self) -> None:
        """Cut `stop()`'s draining short: what is stored stays, the rest is not transcribed."""
        if self.live is not None:
            self.live.cancel()

    # --- internals ----------------------------------------------------------------------------
    def _calendar(self, sid: int, duration: float | None = None) -> None:
        """The calendar event this recording is part of (a title the user gave is kept); the
        transcription's hints and speaker count follow its attendees. Never stops a recording."""
        try:
            title = self.lib.get_session(sid).title
            mine = self.title is None and (duration is None or title == self._auto_title)
            apply_event(self.lib, sid, replace_title=mine, duration=duration)
            if mine:
                self._auto_title = self.lib.get_session(sid).title
            self.options = session_options(self.lib, sid, self.options)
        except Exception:
            log.exception("the calendar event of session %d could not be applied", sid)

    def _audio_flows(self) -> None:  # the recorder's writer thread
        with self._state_lock:
            self._audio.set()
            if self.state == "starting":
                self._set_state("recording")

    def _recorder_stopped(self, result: RecordingResult) -> None:
        self._ended.set()
        if result.error:
            self._notice(result.error)

    def _screen_loop(self) -> None:
        from app.capture.screenshots import ScreenKeeper

        lib = self.lib.connect()
        try:
            assert self.session_id is not None  # the loop runs while a session records
            keeper = self._keeper = ScreenKeeper(self.lib, self.session_id, on_notice=self._notice,
                                                 **self.screen_options)
            while True:
                self._screen_evt.wait(1.0)
                self._screen_evt.clear()
                while self._screens:
                    item = self._screens.popleft()
                    if item is None:
                        return
                    try:
                        keeper.offer(item[0], item[1], item[2], lib=lib)
                    except Exception as e:  # a full disk: say so, the recording goes on
                        self._notice(f"a screen grab could not be saved: {e}")
        finally:
            lib.close()

    def _join(self, sid: int) -> None:
        try:
            join_parts(self.lib, sid)
        except Exception as e:  # a full disk, a part unreadable (wave.Error): the parts stay as they are
            log.exception("joining the parts of session %d", sid)
            self._notice(f"the parts of session {sid} could not be joined: {e}")

    def _notice(self, text: str) -> None:
        self.notices.append(text)
        if self.on_notice is not None:
            try:
                self.on_notice(text)
            except Exception:
                log.exception("on_notice listener failed")

    def _set_state(self, state: str) -> None:
        with self._state_lock:
            self.state = state
            if self.on_state is not None:
                try:
                    self.on_state(state)
                except Exception:
                    log.exception("on_state listener failed")


def recover_unfinished(lib) -> list[tuple[int, RecordingResult]]:
    """Finalize recordings that a crash left unfinished, each into its session (or a new one
    when its session is gone), and repair sessions still marked "recording" whose audio was
    finalized. Returns (session id, result) for each recovered recording."""
    root = lib.data_dir / "media"
    out: list[tuple[int, RecordingResult]] = []
    if not root.is_dir():
        return out
    for folder in find_unfinished(root, depth=2):
        try:
            res = recover(folder)
        except RecordingError as e:
            log.warning("%s", e)
            continue
        sid = _session_of(lib, folder)
        _attach(lib, sid, res)
        out.append((sid, res))
    for session in lib.sessions(kind="recording", status=SessionState.RECORDING):
        folder = lib.media_dir(session.id, create=False) / RECORDING_DIR
        if (folder / SIDECAR).exists() and not is_live(folder):
            try:
                meta = read_sidecar(folder)
            except (OSError, ValueError):
                continue
            mix = folder / meta.get("mix", "mix.wav")
            if meta.get("state") in DONE_STATES and mix.exists():
                res = RecordingResult(folder, float(meta.get("duration", 0.0)), {}, mix,
                                      recovered=meta.get("state") == "recovered")
                _attach(lib, session.id, res)
    return out


def _session_of(lib, folder: Path) -> int:
    sid = folder.parent.name
    if folder.name.startswith(RECORDING_DIR) and sid.isdigit():
        try:
            return lib.get_session(int(sid)).id
        except Exception:
            pass
    return lib.create_session(f"Recovered recording {datetime.now():%Y-%m-%d %H:%M}", "recording",
                              status=SessionState.RECORDING).id


def join_parts(lib, sid: int) -> Path | None:
    """Fold a session's audio media (its parts, and an earlier join) into `media/<sid>/audio.wav`,
    each at its offset, and make that the session's one "audio" media, so transcription and
    playback cover every part. A part's row goes (its files stay, with a JOINED_MARK). None if
    there was nothing to join."""
    out = lib.media_dir(sid, create=True) / JOINED
    joined = lib.relative(out)
    audio = [m for m in lib.media(sid, "audio") if lib.absolute(m).exists()]
    if len([m for m in audio if m.path != joined]) < (1 if any(m.path == joined for m in audio) else 2):
        return None
    join_wavs([(lib.absolute(m), m.offset) for m in audio], out, 16000)
    with lib.transaction():
        for m in audio:
            if m.path != joined:
                (lib.absolute(m).parent / JOINED_MARK).write_text(f"{m.offset}\n")
                lib.forget_media(m.id)
        if not any(m.path == joined for m in audio):
            lib.add_media(sid, out, "audio", 0.0)
    return out


def _attach(lib, sid: int, res: RecordingResult) -> None:
    continued = False
    with lib.transaction():
        audio = lib.media(sid, "audio")
        mine = [m for m in audio if res.mix is not None and m.path == lib.relative(res.mix)]
        mark = res.folder / JOINED_MARK
        if mine:  # attached before (a repair run twice)
            offset = mine[0].offset
        elif mark.exists():  # attached and joined before
            offset = float(mark.read_text().strip() or 0.0)
        elif res.folder.name == RECORDING_DIR:  # the first part: at 0, unless the session has audio
            offset = 0.0
            if res.mix is not None and not audio:
                lib.add_media(sid, res.mix, "audio", 0.0)
        else:  # a continued part goes after what the session holds
            offset = lib.get_session(sid).duration if audio else 0.0
            if res.mix is not None:
                lib.add_media(sid, res.mix, "audio", offset)
                continued = bool(audio)
        has_text = bool(lib.segments(sid))
        lib.update_session(sid, status=SessionState.READY if has_text else SessionState.NEW,
                           duration=max(offset + res.duration, lib.get_session(sid).duration))
    if continued:
        try:
            join_parts(lib, sid)
        except Exception:  # the parts stay; the next start tries nothing more (they are attached)
            log.exception("joining the parts of session %d", sid)
