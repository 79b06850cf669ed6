"""Input devices through sounddevice (injectable as `sd`): listing, choosing, system audio.

A device spec is a name (exact, else a case-insensitive substring of a PortAudio input's name),
"default" (the system's default input), or "pulse:SOURCE": the ALSA `pulse` device opened with
PULSE_SOURCE=SOURCE, which reaches any PulseAudio/PipeWire source by its Pulse name (libpulse
reads the variable when the stream connects, so two streams in one process can use different
sources). System audio ("auto") is `find_system_audio()`: on Linux a `*monitor*` input if PortAudio
lists one, else `pulse` with PULSE_SOURCE=@DEFAULT_MONITOR@ (the monitor of the default output,
PulseAudio and PipeWire alike); on Windows WASAPI loopback; on macOS none without a virtual device.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from app.capture.tracks import RecordingError

KIND = {"mic": "microphone", "system": "system audio"}
_ENV_LOCK = threading.Lock()


def default_sd(sd):
    if sd is None:
        import sounddevice as sd  # needs the PortAudio library: imported only when a device is used
    return sd


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    index: int
    channels: int
    default_rate: float
    hostapi: str


@dataclass
class Source:
    """What to open for one track: a PortAudio device (None: the default input), the env vars
    to set while it opens (PULSE_SOURCE), host-API settings (WASAPI loopback)."""
    track: str
    label: str
    device: int | None
    channels: int = 1
    default_rate: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    extra_settings: Any = None


def list_inputs(sd=None) -> list[DeviceInfo]:
    sd = default_sd(sd)
    apis = sd.query_hostapis()
    return [DeviceInfo(d["name"], i, int(d["max_input_channels"]), float(d["default_samplerate"]),
                       apis[d["hostapi"]]["name"])
            for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def find_input(name_substring: str, sd=None) -> DeviceInfo | None:
    """The input named exactly so, else the first whose name contains it (case-insensitive)."""
    devs = list_inputs(sd)
    low = name_substring.lower()
    return (next((d for d in devs if d.name == name_substring), None)
            or next((d for d in devs if low in d.name.lower()), None))


def _source(track: str, d: DeviceInfo, label: str | None = None, **kw) -> Source:
    return Source(track, label or d.name, d.index, d.channels, d.default_rate, **kw)


def resolve(track: str, spec: str, sd=None) -> Source:
    """A device spec ("default", "pulse:SOURCE", a name) as a Source; RecordingError if absent."""
    sd = default_sd(sd)
    what = KIND.get(track, track)
    if spec in ("", "default"):
        try:
            d = sd.query_devices(kind="input")
        except Exception:
            raise RecordingError(f"no {what} found (the system has no default input device)") from None
        return Source(track, d["name"], None, int(d["max_input_channels"]), float(d["default_samplerate"]))
    if spec.startswith("pulse:"):
        pulse = next((d for d in list_inputs(sd) if d.name == "pulse"), None)
        if pulse is None:
            raise RecordingError(f"cannot reach PulseAudio/PipeWire for the {what} '{spec[6:]}' "
                                 "(the ALSA pulse plugin, package libasound2-plugins, is missing)")
        return _source(track, pulse, spec[6:], env={"PULSE_SOURCE": spec[6:]})
    d = find_input(spec, sd)
    if d is None:
        names = ", ".join(f"'{x.name}'" for x in list_inputs(sd)) or "none"
        raise RecordingError(f"no {what} named '{spec}' (inputs: {names})")
    return _source(track, d)


def find_system_audio(sd=None) -> tuple[Source | None, str]:
    """The source that hears what the computer plays, and a line saying what it is; or None and
    the reason (a notice for the user: the microphone is still recorded)."""
    sd = default_sd(sd)
    if sys.platform == "darwin":
        return None, ("macOS cannot record system audio without a virtual loopback device (such as "
                      "BlackHole): install one, send the output to it and choose it as system audio")
    if sys.platform == "win32":
        return _wasapi_loopback(sd)
    devs = list_inputs(sd)
    mon = next((d for d in devs if "monitor" in d.name.lower()), None)
    if mon is not None:
        return _source("system", mon), f"system audio from '{mon.name}'"
    pulse = next((d for d in devs if d.name == "pulse"), None)
    if pulse is not None:
        src = _source("system", pulse, "monitor of the default output", env={"PULSE_SOURCE": "@DEFAULT_MONITOR@"})
        return src, "system audio from the PulseAudio/PipeWire monitor of the default output"
    return None, ("system audio needs PulseAudio or PipeWire and the ALSA pulse plugin (package "
                  "libasound2-plugins); recording the microphone only")


def _wasapi_loopback(sd) -> tuple[Source | None, str]:  # Windows only: cannot be tested on Linux
    apis = sd.query_hostapis()
    api = next((i for i, a in enumerate(apis) if "WASAPI" in a["name"]), None)
    if api is None:
        return None, "system audio needs Windows WASAPI, which PortAudio does not offer here"
    out = apis[api]["default_output_device"]
    try:
        settings = sd.WasapiSettings(loopback=True)  # sounddevice builds with loopback support
    except TypeError:
        settings = None
    if settings is not None and out >= 0:
        d = sd.query_devices(out)
        return (Source("system", f"{d['name']} (loopback)", out, int(d["max_output_channels"]),
                       float(d["default_samplerate"]), extra_settings=settings), f"system audio from '{d['name']}'")
    # PortAudio >= 19.7 lists loopbacks as WASAPI inputs named "... [Loopback]"
    loops = [d for d in list_inputs(sd) if "WASAPI" in d.hostapi and "[loopback]" in d.name.lower()]
    if loops:
        name = sd.query_devices(out)["name"] if out >= 0 else ""
        d = next((x for x in loops if name and name in x.name), loops[0])
        return _source("system", d), f"system audio from '{d.name}'"
    return None, ("this PortAudio build has no WASAPI loopback; recording the microphone only "
                  "(a virtual cable device can be chosen as system audio instead)")


@contextmanager
def with_env(env: dict[str, str]):
    """Set env vars while a stream opens (libpulse reads PULSE_SOURCE when it connects)."""
    if not env:
        yield
        return
    with _ENV_LOCK:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

