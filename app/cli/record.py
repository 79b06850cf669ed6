"""``python main.py record``: record a meeting (microphone, system audio, screen) into a session.

Stops on Ctrl-C, SIGTERM or after ``--seconds`` of stored audio (counted in samples by the
recorder, so ``--seconds 20`` stores 20 s however long the devices take to start); "recording" is
said once audio flows, not when the devices are merely open. Prints the session id. At start,
recordings a crash left unfinished are finalized into their sessions first. With ``--live`` the model
transcribes utterances while the meeting runs (segments are printed to stderr as they land);
without it the session keeps the audio for a later transcription. With ``--screen-interval`` the
main thread runs the screen grab's Qt event loop (app/capture/screen.py; this module imports no Qt).

With ``--auto`` it first waits for a meeting app (Zoom, Teams, a browser, ...) to start capturing the
microphone (app/capture/meetings_detect.py). It follows the settings as the window does: an app in
``auto_record_apps`` is recorded at once; another meeting app is offered (``detect_meetings``): a
"Record this meeting (Teams)? [y/N]" question when stdin is a terminal, else one line saying it was
skipped. With ``detect_meetings`` off and no ``auto_record_apps`` it says so and exits (2). ``--app
NAME`` (repeatable) or ``--any-app`` override the settings: only those apps (or any app) count, and
they are recorded without asking. It then records the microphone and
system audio, and stops by itself when that app releases the microphone (after ``--release-grace``
seconds) or after ``--stop-after-silence`` minutes of silence on every track (setting
auto_stop_silence_minutes), saying so with a countdown first (app/pipeline/autostop.py). A false
stop is undone with ``--continue SESSION``: a further part recorded into the same session (with
``--live`` transcribed live, its segments after the earlier parts').
"""

from __future__ import annotations

import math
import signal
import subprocess
import threading

from ..fmt import clock
from .common import EXIT_OK, UsageError, add_model_args, engine_config, load_settings, open_library, remote_engine, say


def register(sub) -> None:
    p = sub.add_parser("record", help="record a meeting (microphone, system audio, screen) into a session")
    p.add_argument("--device", metavar="NAME",
                   help="microphone: a device name (or part of one), 'default' or 'pulse:SOURCE' "
                        "(default: from settings)")
    p.add_argument("--no-mic", action="store_true", help="record no microphone (system audio only)")
    p.add_argument("--system-audio", nargs="?", const="auto", metavar="NAME",
                   help="also record what the computer plays ('auto' if no NAME is given)")
    p.add_argument("--seconds", type=float, help="stop once this many seconds of audio are stored (default: Ctrl-C)")
    p.add_argument("--screen-interval", type=float, metavar="S", help="grab the screen every S seconds")
    p.add_argument("--live", action="store_true", help="transcribe while recording (needs the model)")
    p.add_argument("--title", help="session title (default: 'Meeting <date> <time>')")
    p.add_argument("--speakers", type=int, help="number of speakers, if known (else automatic)")
    p.add_argument("--language", help="language of the speech, if known")
    p.add_argument("--parallel", type=int, default=2, help="utterances the model answers together (default 2)")
    p.add_argument("--auto", action="store_true",
                   help="wait for a meeting app to use the microphone, record, stop when it ends")
    p.add_argument("--any-app", action="store_true",
                   help="with --auto: record any app that uses the microphone, without asking")
    p.add_argument("--app", action="append", metavar="NAME",
                   help="with --auto: record only this app (Zoom, Teams, ...), without asking; repeatable "
                        "(overrides the settings detect_meetings and auto_record_apps)")
    p.add_argument("--stop-after-silence", type=float, metavar="MIN",
                   help="with --auto: stop after this many minutes of silence (default: from settings; 0: never)")
    p.add_argument("--release-grace", type=float, default=10.0, metavar="S",
                   help="with --auto: stop this many seconds after the app released the microphone (default 10)")
    p.add_argument("--continue", dest="continue_session", type=int, metavar="SESSION",
                   help="record on into this session (after a false auto-stop)")
    add_model_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..capture.recorder import RecordingError
    from ..pipeline.autostop import AutoStop
    from ..pipeline.meeting import Meeting, recover_unfinished

    if args.seconds is not None and args.seconds <= 0:
        raise UsageError("--seconds must be more than 0")
    if args.screen_interval is not None and args.screen_interval <= 0:
        raise UsageError("--screen-interval must be more than 0")
    settings = load_settings()
    mic = None if args.no_mic else (args.device or settings.mic_device or "default")
    system = args.system_audio
    if args.auto and system is None and settings.system_device != "off":
        system = settings.system_device or "auto"  # a meeting: what the others say, too
    if args.release_grace < 0 or (args.stop_after_silence or 0) < 0:
        raise UsageError("--release-grace and --stop-after-silence cannot be negative")
    if mic is None and system is None:
        raise UsageError("nothing to record: --no-mic needs --system-audio")
    if (args.app or args.any_app) and not args.auto:
        raise UsageError("--app and --any-app go with --auto")
    if args.auto and not (args.app or args.any_app or settings.detect_meetings or settings.auto_record_apps):
        raise UsageError("meeting detection is off in the settings (detect_meetings, and no auto_record_apps): "
                         "turn it on, or name the app with --app NAME (or --any-app)")
    engine, opts = None, None
    if args.live:
        engine, opts = _live_engine(args, settings)
    with open_library() as lib:
        for sid, res in recover_unfinished(lib):
            say(f"recovered an unfinished recording ({res.duration:.1f} s) into session {sid}")
        _refresh_calendar(lib, settings.calendar_folder)

        def show(seg) -> None:
            say(f"[{clock(seg.start)}] {seg.speaker or '?'}: {seg.text}")

        stop = threading.Event()
        _stop_signals(stop.set)
        watcher, app = None, ""
        if args.auto:
            found = _wait_for_meeting(args, settings, stop)
            if found is None:  # Ctrl-C while waiting
                say("no meeting recorded")
                return EXIT_OK
            watcher, app = found
        meeting = Meeting(lib, mic=mic, system=system, title=args.title, engine=engine, options=opts,
                          on_segment=show if args.live else None, on_notice=say,
                          recorder_options={"max_seconds": args.seconds},
                          continue_session=args.continue_session)
        try:
            sid = meeting.start()
        except RecordingError as e:
            raise UsageError(str(e)) from None
        try:
            while not (stop.is_set() or meeting.wait_audio(0.05) or meeting.wait_ended(0)):
                pass  # the devices are open; audio follows (PulseAudio: 0.4-2 s)
            if meeting.wait_audio(0):
                tracks = " + ".join({"mic": "microphone", "system": "system audio"}.get(t, t)
                                    for t in meeting.tracks)
                say(f"recording session {sid} ({tracks}); Ctrl-C stops")
                if watcher is not None:
                    minutes = settings.auto_stop_silence_minutes if args.stop_after_silence is None \
                        else args.stop_after_silence
                    auto = AutoStop(minutes * 60 if minutes > 0 else None, release_s=args.release_grace)
                    _wait_auto(meeting, stop, watcher, app, auto)
                elif args.screen_interval:
                    _run_with_screen(meeting, args, stop)
                else:
                    _wait(meeting, stop)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C cuts finishing short
            say("stopping" + ("; finishing the live transcription" if args.live else ""))
            result = meeting.stop()
        except KeyboardInterrupt:  # a second Ctrl-C while finishing: keep what is stored
            meeting.cancel()
            result = meeting.stop()
        finally:
            if engine is not None and hasattr(engine, "close_loaded"):
                engine.close_loaded()
        _report(result, args.live)
        if watcher is not None:
            say(f"stopped too early? `record --continue {sid}` records on into this session")
        print(sid, flush=True)
    return EXIT_OK


def _refresh_calendar(lib, folder: str) -> None:
    """Re-read the watched calendar folder, so the recording finds today's event; never fatal."""
    if not folder:
        return
    from ..library.ics import CalendarError
    from ..pipeline.calendar import import_folder

    try:
        for why in import_folder(lib, folder).errors:
            say(f"calendar: {why}")
    except CalendarError as e:
        say(f"calendar: {e}")


class _LazyEngine:
    """Loads the model in the live-transcription thread on first use (recording starts at once)."""

    def __init__(self, choice, cfg, remote=None):
        self.choice, self.cfg, self.loaded, self.remote = choice, cfg, None, remote

    def __call__(self):
        from ..engine.engine import Engine

        self.loaded = self.remote or Engine(self.choice.model, self.choice.mmproj, self.cfg,
                                            drafter=self.choice.drafter)
        return self.loaded

    def close_loaded(self) -> None:
        if self.loaded is not None:
            self.loaded.close()


def _live_engine(args, settings):
    from ..engine.errors import ModelError
    from ..engine.gguf_check import check_pair
    from ..engine.resolve import resolve_model
    from ..pipeline.transcribe import TranscribeOptions

    remote = remote_engine(args, settings)
    cfg = engine_config(args, settings)
    cfg.n_parallel = max(1, args.parallel)
    opts = TranscribeOptions.from_settings(settings, title=args.title, speakers=args.speakers,
                                           language=args.language or None, parallel=cfg.n_parallel)
    if remote is not None:
        return _LazyEngine(None, cfg, remote), opts
    choice = resolve_model(args.model, args.mmproj, settings)  # ModelError (exit 3) before recording
    if choice.mmproj is None:
        raise ModelError("live transcription needs the model's mmproj (audio): give --mmproj")
    check_pair(choice.model, choice.mmproj)
    return _LazyEngine(choice, cfg), opts


def _stop_signals(on_stop) -> None:
    def handler(signum, frame):
        on_stop()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _wait(meeting, stop: threading.Event) -> None:
    """Until Ctrl-C/SIGTERM, or the recorder ended by itself: --seconds of audio stored, or a
    device lost (it saved and stopped)."""
    while not stop.is_set() and not meeting.wait_ended(0.2):
        pass


def _wait_for_meeting(args, settings, stop: threading.Event):
    """Poll until a meeting app captures the microphone and is to be recorded: (the watcher, the
    app), or None if stopped first. Which apps are recorded, asked about or skipped: see the
    module's docstring."""
    from ..capture.meetings_detect import MEETING_APPS, MeetingWatcher, default_detector, why_no_detector

    detector = default_detector()
    if detector is None:
        raise UsageError(why_no_detector())
    watcher = MeetingWatcher(detector, any_app=args.any_app, interval=_POLL_S,
                             apps=_named_apps(args.app) if args.app else MEETING_APPS)
    explicit = bool(args.app or args.any_app)
    allowed = {a.lower() for a in settings.auto_record_apps}
    if explicit:
        what = " (any app using the microphone)" if args.any_app else f" ({', '.join(watcher.apps)})"
    elif settings.detect_meetings:
        what = f" ({', '.join(settings.auto_record_apps)} recorded without asking)" if allowed else ""
    else:
        what = f" (only {', '.join(settings.auto_record_apps)}: detect_meetings is off)"
    say(f"waiting for a meeting{what}…; Ctrl-C quits")
    told, skipped = None, set()
    while not stop.is_set():
        events = watcher.step()
        if watcher.error and watcher.error != told:  # no server (yet): say so once, keep trying
            told = watcher.error
            say(f"meeting detection: {told}; still trying")
        for ev, app in events:
            if ev == "stopped" and app in skipped:  # its next start is a new meeting: offered again
                skipped.discard(app)
                say(f"{app} stopped using the microphone")
            elif ev != "started":
                continue
            elif explicit or app.lower() in allowed:
                say(f"{app} started using the microphone: recording")
                return watcher, app
            elif _ask(app, settings.detect_meetings, stop):
                if _still_capturing(watcher, app):  # the answer may come long after the question
                    say(f"{app} started using the microphone: recording")
                    return watcher, app
                say(f"{app} no longer uses the microphone; still waiting")
                skipped.add(app)
            else:
                skipped.add(app)
        stop.wait(watcher.interval)
    return None


def _still_capturing(watcher, app: str) -> bool:
    """Whether `app` captures the microphone now (a failed poll: assume it does)."""
    try:
        return any(watcher.name(c) == app for c in watcher.detector.poll())
    except (OSError, subprocess.SubprocessError):
        return True


def _named_apps(names: list[str]) -> dict[str, tuple[str, ...]]:
    """`--app` names -> the watcher's app table: a known meeting app by its name (any case), any
    other name matched as written against the application's name and binary."""
    from ..capture.meetings_detect import MEETING_APPS

    known = {k.lower(): k for k in MEETING_APPS}
    out: dict[str, tuple[str, ...]] = {}
    for raw in names:
        name = raw.strip()
        if not name:
            raise UsageError("--app needs a name (Zoom, Teams, ...)")
        key = known.get(name.lower())
        if key is not None:
            out[key] = MEETING_APPS[key]
        else:
            out[name] = (name.lower(),)
    return out


def _ask(app: str, offer: bool, stop: threading.Event) -> bool:
    """The window's offer at the terminal: "Record this meeting (Zoom)? [y/N]" when `offer`
    (detect_meetings) and stdin is a terminal (Ctrl-C while asking: no); else one line saying it
    was skipped."""
    import select
    import sys

    if not offer:
        say(f"{app} started using the microphone: not recorded (detect_meetings is off); still waiting")
        return False
    if not sys.stdin.isatty():
        say(f"{app} started using the microphone: not recorded (not in auto_record_apps, and no terminal "
            "to ask); still waiting")
        return False
    say(f"Record this meeting ({app})? [y/N]")  # a whole line: the answer is typed below it
    while not stop.is_set():
        ready, _, _ = select.select([sys.stdin], [], [], 0.2)
        if ready:
            answer = sys.stdin.readline().strip().lower()
            if answer in ("y", "yes"):
                return True
            say(f"not recording {app}; still waiting")
            return False
    return False


_POLL_S = 1.0  # how often --auto asks PulseAudio who captures the microphone


def _wait_auto(meeting, stop: threading.Event, watcher, app: str, auto) -> None:
    """Until Ctrl-C, the recorder ended, or AutoStop says stop (with a countdown line first)."""
    import time

    next_poll = 0.0
    while not stop.is_set() and not meeting.wait_ended(0.1):
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + watcher.interval
            watcher.step()
            if app in watcher.active:
                auto.app_back()
            else:
                auto.app_released()
        verdict = auto.update(meeting.levels)
        if verdict is None:
            continue
        what, reason, left = verdict
        if what == "countdown":
            say(f"auto-stop in {math.ceil(left)} s: {reason} ({app}); Ctrl-C stops now")
        elif what == "cancelled":
            say("auto-stop cancelled: " + ("the app is back" if reason.startswith("the app") else "sound again"))
        else:
            say(f"auto-stop: {reason}")
            return


def _run_with_screen(meeting, args, stop: threading.Event) -> None:
    from ..capture.screen import display_missing

    why = display_missing()
    if why is not None:  # checked before loading Qt at all
        say(f"{why}; recording without screen grabs")
        return _wait(meeting, stop)
    from ..capture.screen import grab_until  # the Qt event loop lives with the screen grab

    grab_until(args.screen_interval, meeting.offer_screen,
               done=lambda: stop.is_set() or meeting.wait_ended(0),
               on_notice=lambda why: say(f"{why}; recording without screen grabs"))


def _report(result, live: bool) -> None:
    rec = result.recording
    line = f"recorded {result.duration:.1f} s into session {result.session_id}"
    if rec.overflows:
        line += f"; {rec.overflows} buffer overflow(s)"
    if result.screenshots:
        line += f"; {result.screenshots} screenshot(s)"
    if result.live is not None:
        s = result.live
        line += f"; {s.segments} segment(s) from {s.utterances} utterance(s)"
        if s.dropped:
            line += f" ({s.dropped} transcribed after the meeting: the model fell behind)"
    elif not live:
        line += "; not transcribed (record with --live, or transcribe the session's audio later)"
    say(line)
