"""Which applications are capturing the microphone now, and a watcher that says when a meeting
app starts or stops doing so. No Qt: the CLI polls it on a thread, the GUI on the runner's pool.

    detector = default_detector()            # PulseDetector on Linux; None where none exists yet
    detector.poll() -> [Capture(app, binary, pid, source), ...]
    w = MeetingWatcher(detector, on_started=..., on_stopped=..., any_app=False)
    w.step()                                 # one poll: calls on_started(app) / on_stopped(app)
    w.update(captures)                       # the same with a poll made elsewhere (the GUI's pool)
    w.run(stop_event)                        # polls every `interval` s until the event is set

The interface is one method, `MeetingDetector.poll()`. Implementations:

- Linux (here): PulseAudio, or PipeWire through pipewire-pulse, lists every recording stream as a
  "source output" with the client's properties. `pactl -f json list source-outputs` (pactl 15+),
  else the text of `pactl list source-outputs`: application.name, application.process.binary,
  application.process.id, and the source the stream records from. A monitor source (someone
  recording what the computer plays) is not the microphone and is left out. Minutely's own
  streams (its PortAudio/ALSA plug-in stream carries our pid) are left out.
- macOS and Windows: described here only, not written. `default_detector()` returns None there
  (`why_no_detector()` says so in one line): `record --auto` exits with that line and the window
  never polls. An implementation is one class with `poll()`, returned by `default_detector()`:
- macOS (not written): Core Audio (14.2+) lists the processes using audio with
  kAudioHardwarePropertyProcessObjectList; for each process object kAudioProcessPropertyPID,
  kAudioProcessPropertyBundleID and kAudioProcessPropertyIsRunningInput say who is capturing
  (a property listener can replace polling). The source is the default input device.
- Windows (not written): WASAPI: for each active capture endpoint (IMMDeviceEnumerator::
  EnumAudioEndpoints(eCapture, DEVICE_STATE_ACTIVE)), IAudioSessionManager2::GetSessionEnumerator
  lists the sessions; an IAudioSessionControl2 whose GetState() is AudioSessionStateActive gives
  GetProcessId() (the binary from the process' image name) and GetDisplayName(). The endpoint's
  friendly name is the source.

Which captures count as a meeting is data (`MEETING_APPS`): a name and the strings that identify
it in the application name or binary. A browser capturing the microphone counts as the browser
("Meet/Jitsi/Webex in a browser" cannot be told apart from outside the browser).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("minutely.meetings_detect")


@dataclass(frozen=True)
class Capture:
    """One stream recording from an input device."""

    app: str            # application.name as the client gave it ("ZOOM VoiceEngine", "Firefox")
    binary: str         # application.process.binary ("zoom", "firefox"); "" if not given
    pid: int | None     # application.process.id
    source: str = ""    # the device it records from (a source name, an endpoint)


class MeetingDetector(Protocol):
    """Who captures a microphone now. Implemented for Linux only (`PulseDetector`); macOS (Core
    Audio process objects) and Windows (WASAPI capture sessions) are described in the module's
    docstring, not written."""

    def poll(self) -> list[Capture]:
        """The streams capturing a microphone right now (raises OSError if it cannot tell)."""
        ...


# name shown -> lower-case fragments matched against application.name and process.binary
MEETING_APPS: dict[str, tuple[str, ...]] = {
    "Zoom": ("zoom",),
    "Teams": ("teams",),
    "Slack": ("slack",),
    "Webex": ("webex", "ciscocollab"),
    "Skype": ("skype",),
    "Discord": ("discord",),
    "Jitsi": ("jitsi",),
    "Firefox": ("firefox",),
    "Chrome": ("chrome", "chromium"),
    "Edge": ("msedge", "microsoft-edge"),
    "Brave": ("brave",),
}


def meeting_app(c: Capture, apps: Mapping[str, Iterable[str]] = MEETING_APPS) -> str | None:
    """The meeting app a capture belongs to, or None."""
    hay = f"{c.app}\n{c.binary}".lower()
    for name, keys in apps.items():
        if any(k in hay for k in keys):
            return name
    return None


def display_name(c: Capture) -> str:
    """A name for any app (the "any app that uses the microphone" case)."""
    return c.app or c.binary or (f"pid {c.pid}" if c.pid else "an app")


# --- Linux: PulseAudio / PipeWire ------------------------------------------------------------
class PulseDetector:
    """Source outputs of the PulseAudio (or pipewire-pulse) server this process would talk to."""

    def __init__(self, own_pids: Iterable[int] = (), env: Mapping[str, str] | None = None, pactl: str = "pactl"):
        self.own_pids = {os.getpid(), *own_pids}
        self.env, self.pactl = env, pactl
        self._json: bool | None = None  # None: not tried yet

    def _run(self, *args: str) -> str:
        env = None if self.env is None else {**os.environ, **self.env}
        p = subprocess.run([self.pactl, *args], capture_output=True, text=True, timeout=5, env=env)
        if p.returncode != 0:
            raise OSError(f"pactl {' '.join(args)}: {p.stderr.strip() or p.returncode}")
        return p.stdout

    def poll(self) -> list[Capture]:
        outputs = None
        if self._json is not False:
            try:
                outputs = parse_json(self._run("-f", "json", "list", "source-outputs"))
                self._json = True
            except (OSError, ValueError):
                if self._json:
                    raise
                self._json = False
        if outputs is None:
            outputs = parse_text(self._run("list", "source-outputs"))
        monitors = self._monitors() if any(s for s, _ in outputs) else set()
        out = []
        for source, props in outputs:
            c = _capture(source, props)
            if c.pid in self.own_pids or source in monitors or source.endswith(".monitor"):
                continue
            if not (c.app or c.binary or c.pid):  # the server's own streams (a remap or loopback module)
                continue
            out.append(c)
        return out

    def _monitors(self) -> set[str]:
        """Source names and indexes that are monitors of a sink (system audio, not a microphone)."""
        out = set()
        try:
            for line in self._run("list", "short", "sources").splitlines():
                parts = line.split("\t")
                if len(parts) > 1 and parts[1].endswith(".monitor"):
                    out.update(parts[:2])
        except OSError:
            pass
        return out


def _capture(source: str, p: Mapping[str, str]) -> Capture:
    pid = p.get("application.process.id", "")
    return Capture(p.get("application.name", ""), p.get("application.process.binary", ""),
                   int(pid) if pid.isdigit() else None, source)


def parse_json(text: str) -> list[tuple[str, dict[str, str]]]:
    """`pactl -f json list source-outputs` -> [(source, properties)]."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("pactl json: not a list")
    return [(str(o.get("source", "")), {str(k): str(v) for k, v in (o.get("properties") or {}).items()})
            for o in data if isinstance(o, dict)]


_PROP = re.compile(r'^\s+([\w.\-]+) = "(.*)"$')


def parse_text(text: str) -> list[tuple[str, dict[str, str]]]:
    """`pactl list source-outputs` (any language for the headings; the property lines are fixed)."""
    out: list[tuple[str, dict[str, str]]] = []
    for block in re.split(r"\n(?=\S)", text.strip()):
        if not block.strip():
            continue
        props: dict[str, str] = {}
        source = ""
        for line in block.splitlines():
            m = _PROP.match(line)
            if m:
                props[m.group(1)] = m.group(2).replace('\\"', '"')
            elif re.match(r"^\t\w[^:=]*:\s*\S", line) and not source and line.strip().split(":")[0] in ("Source",
                                                                                                        "Quelle"):
                source = line.split(":", 1)[1].strip()
        out.append((source, props))
    return out


def default_detector(own_pids: Iterable[int] = ()) -> MeetingDetector | None:
    """The detector for this system, or None where Minutely has none (macOS, Windows: see above)."""
    if sys.platform.startswith("linux") and shutil.which("pactl"):
        return PulseDetector(own_pids)
    return None


def why_no_detector() -> str:
    """One line: why `default_detector()` gave None here."""
    if sys.platform == "darwin" or sys.platform.startswith("win"):
        system = "macOS" if sys.platform == "darwin" else "Windows"
        return f"meeting detection is not implemented on {system} yet (Linux only: PulseAudio or PipeWire)"
    return "meeting detection needs PulseAudio or PipeWire (pactl); not available here"


# --- the watcher -----------------------------------------------------------------------------
class MeetingWatcher:
    """Polls a detector and says when an app starts or stops capturing the microphone: the known
    meeting apps (`apps`), or with `any_app` every app. An app's name is its `MEETING_APPS` name
    (or `display_name`). A poll that fails keeps the last answer (a busy server must not look
    like every meeting ending)."""

    def __init__(self, detector: MeetingDetector, *, on_started: Callable[[str], None] | None = None,
                 on_stopped: Callable[[str], None] | None = None, any_app: bool = False,
                 apps: Mapping[str, Iterable[str]] = MEETING_APPS, interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic):
        self.detector, self.on_started, self.on_stopped = detector, on_started, on_stopped
        self.any_app, self.apps, self.interval, self.clock = any_app, apps, interval, clock
        self.active: dict[str, list[Capture]] = {}  # app -> its captures, as of the last poll
        self.last_poll: float | None = None
        self.error: str | None = None

    def name(self, c: Capture) -> str | None:
        return meeting_app(c, self.apps) or (display_name(c) if self.any_app else None)

    def step(self) -> list[tuple[str, str]]:
        """Poll once; returns (event, app) pairs, "started"/"stopped", after calling the callbacks."""
        self.last_poll = self.clock()
        try:
            caps = self.detector.poll()
            self.error = None
        except (OSError, subprocess.SubprocessError) as e:
            if self.error is None:
                log.warning("meeting detection: %s", e)
            self.error = str(e)
            return []
        return self.update(caps)

    def update(self, caps: Iterable[Capture]) -> list[tuple[str, str]]:
        """What `step` does with a poll's answer (for a caller that polls on another thread)."""
        now: dict[str, list[Capture]] = {}
        for c in caps:
            n = self.name(c)
            if n is not None:
                now.setdefault(n, []).append(c)
        events = [("stopped", a) for a in self.active if a not in now] + \
                 [("started", a) for a in now if a not in self.active]
        self.active = now
        for ev, app in events:
            fn = self.on_started if ev == "started" else self.on_stopped
            if fn is not None:
                try:
                    fn(app)
                except Exception:
                    log.exception("meeting watcher listener failed")
        return events

    def run(self, stop: threading.Event) -> None:
        """Poll every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            t0 = self.clock()
            self.step()
            stop.wait(max(0.0, self.interval - (self.clock() - t0)))
