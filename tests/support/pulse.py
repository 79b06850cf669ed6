"""A private PulseAudio for device tests: a virtual microphone and a system-audio loopback on a
machine with no sound card.

    def test_x(pulse):               # the session fixture (tests/conftest.py registers this module)
        rec = Recorder(folder, mic=pulse.mic, system=pulse.system)   # "virtmic", "sysaudio"
        pulse.play(wav, "micfeed")      # heard on virtmic; "speaker" is heard on sysaudio / the monitor

The daemon runs as a child process (`--daemonize=no`, stopped by its pid) with its own HOME and
XDG_RUNTIME_DIR under a private temp dir, and serves one unix socket with anonymous auth:
    null-sink `speaker` (the default sink: "what the computer plays"; its monitor is system audio)
    null-sink `micfeed` + remap-source `virtmic` (master micfeed.monitor): the default source
How PortAudio (sounddevice) reaches it, chosen because it needs no change to HOME for the test
process: PULSE_SERVER=unix:<socket> for libpulse, and ALSA_CONFIG_PATH=<dir>/asound.conf, a file
that includes the system's alsa.conf and adds two ALSA pcms of type pulse:
    pcm.virtmic  { type pulse; device "virtmic" }     pcm.sysaudio { type pulse; device "speaker.monitor" }
PortAudio lists ALSA devices when it initializes (sounddevice does that at import), so after the
env is set the fixture re-initializes it (`sd._terminate(); sd._initialize()`; PortAudio's ALSA
terminate frees ALSA's cached config, so the new file is read) and does it again at teardown with
the env restored. Child processes get `pulse.env`. Skips when pulseaudio, pactl, paplay, the ALSA
pulse plugin or PortAudio is missing (scripts/setup.sh --test installs them on Debian:
pulseaudio pulseaudio-utils libasound2-plugins libportaudio2).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
ASOUNDRC = """<{alsa_conf}>
pcm.virtmic  {{ type pulse; device "virtmic";         hint {{ show on; description "Minutely test mic" }} }}
pcm.sysaudio {{ type pulse; device "speaker.monitor"; hint {{ show on; description "Minutely test system audio" }} }}
"""
VIRTMIC_ARGS = ["module-remap-source", "source_name=virtmic", "master=micfeed.monitor"]


@dataclass
class PulseRig:
    dir: Path
    proc: subprocess.Popen
    env: dict[str, str]  # what a process needs to see this daemon through PortAudio/ALSA and pactl
    mic: str = "virtmic"  # ALSA pcm names, as sounddevice lists them
    system: str = "sysaudio"
    players: list[subprocess.Popen] = field(default_factory=list)

    def child_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], env=self.child_env(), capture_output=True, text=True,
                              check=True, timeout=10).stdout

    def play(self, wav: Path, sink: str = "micfeed") -> subprocess.Popen:
        """paplay a WAV into `micfeed` (heard on the virtual mic) or `speaker` (system audio)."""
        p = subprocess.Popen(["paplay", f"--device={sink}", str(wav)], env=self.child_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.players.append(p)
        return p

    def meeting_app(self, name: str = "ZOOM VoiceEngine", binary: str = "zoom") -> subprocess.Popen:
        """A client recording the virtual mic with a meeting app's PulseAudio properties (what
        meeting detection sees of Zoom); terminate it to make the app let go of the microphone."""
        p = subprocess.Popen(["parecord", "--device=virtmic", "--raw", f"--property=application.name={name}",
                              f"--property=application.process.binary={binary}", os.devnull],
                             env=self.child_env(), stderr=subprocess.PIPE)
        self.players.append(p)  # stopped by its pid at teardown if a test fails first
        return p

    def unload_virtmic(self) -> None:
        """Unplug the virtual microphone (its remap-source module goes away)."""
        for line in self.pactl("list", "short", "modules").splitlines():
            parts = line.split("\t")
            if len(parts) > 2 and parts[1] == "module-remap-source" and "source_name=virtmic" in parts[2]:
                self.pactl("unload-module", parts[0])

    def load_virtmic(self) -> None:
        """Plug it back in (and make it the default source again)."""
        if "virtmic" not in self.pactl("list", "short", "sources"):
            self.pactl("load-module", *VIRTMIC_ARGS)
        self.pactl("set-default-source", "virtmic")


def missing() -> str | None:
    """Why the rig cannot run here, or None."""
    for tool in ("pulseaudio", "pactl", "paplay", "parecord"):
        if not shutil.which(tool):
            return f"{tool} is not installed (Debian: pulseaudio pulseaudio-utils)"
    if not glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so") + \
            glob.glob("/usr/lib*/alsa-lib/libasound_module_pcm_pulse.so"):
        return "the ALSA pulse plugin is not installed (Debian: libasound2-plugins)"
    if not ALSA_CONF.exists():
        return f"{ALSA_CONF} not found"
    try:
        import sounddevice  # noqa: F401
    except OSError as e:
        return f"PortAudio is not installed (Debian: libportaudio2): {e}"
    return None


def start_pulse() -> PulseRig:
    d = Path(tempfile.mkdtemp(prefix="minutely-pulse-"))  # short: a unix socket path has ~100 chars
    (d / "home").mkdir()
    (d / "run").mkdir(mode=0o700)
    sock = d / "native.sock"
    (d / "asound.conf").write_text(ASOUNDRC.format(alsa_conf=ALSA_CONF))
    daemon_env = {**os.environ, "HOME": str(d / "home"), "XDG_RUNTIME_DIR": str(d / "run")}
    for k in ("PULSE_SERVER", "PULSE_SOURCE", "PULSE_SINK"):
        daemon_env.pop(k, None)
    cmd = ["pulseaudio", "--daemonize=no", "--use-pid-file=no", "--exit-idle-time=-1", "--disallow-exit", "-n",
           "--log-target=stderr", "--log-level=error",
           "-L", f"module-native-protocol-unix auth-anonymous=1 socket={sock}",
           "-L", "module-null-sink sink_name=speaker", "-L", "module-null-sink sink_name=micfeed",
           "-L", " ".join(VIRTMIC_ARGS), "-L", "module-always-sink"]
    log = open(d / "pulseaudio.log", "wb")
    proc = subprocess.Popen(cmd, env=daemon_env, stdout=log, stderr=log, cwd=d)
    log.close()
    rig = PulseRig(d, proc, {"PULSE_SERVER": f"unix:{sock}", "ALSA_CONFIG_PATH": str(d / "asound.conf")})
    deadline = time.monotonic() + 15
    while True:  # wait until it answers
        if proc.poll() is not None:
            raise RuntimeError(f"pulseaudio exited ({proc.returncode}): {(d / 'pulseaudio.log').read_text()[-500:]}")
        ok = subprocess.run(["pactl", "info"], env=rig.child_env(), capture_output=True, timeout=10).returncode == 0
        if ok:
            break
        if time.monotonic() > deadline:
            stop_pulse(rig)
            raise RuntimeError("pulseaudio did not answer within 15 s")
        time.sleep(0.05)
    rig.pactl("set-default-sink", "speaker")
    rig.pactl("set-default-source", "virtmic")
    return rig


def stop_pulse(rig: PulseRig) -> None:
    for p in rig.players + [rig.proc]:  # only the processes this rig started, by their pid
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    shutil.rmtree(rig.dir, ignore_errors=True)


def reinit_portaudio() -> None:
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


@pytest.fixture(scope="session")
def pulse():
    why = missing()
    if why:
        pytest.skip(why)
    rig = start_pulse()
    saved = {k: os.environ.get(k) for k in rig.env}
    os.environ.update(rig.env)
    try:
        reinit_portaudio()
        import sounddevice as sd

        names = [d["name"] for d in sd.query_devices()]
        assert rig.mic in names and rig.system in names, f"PortAudio does not see the rig: {names}"
        yield rig
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        try:
            reinit_portaudio()
        finally:
            stop_pulse(rig)


def main() -> int:
    """`python -m tests.support.pulse`: run the rig by hand (for trying a record CLI or the GUI)."""
    why = missing()
    if why:
        print(why)
        return 1
    rig = start_pulse()
    print("\n".join(f"export {k}={v}" for k, v in rig.env.items()))
    print(f"# mic: {rig.mic}, system audio: {rig.system}; PULSE_SERVER=... paplay --device=micfeed x.wav")
    print("# Ctrl-C stops it", flush=True)
    try:
        rig.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_pulse(rig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
