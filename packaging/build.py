"""Build Minutely's packages: `python packaging/build.py` (or `bash packaging/build.sh`).

Steps (each can be skipped, see --help):
1. icons: assets/minutely.svg rendered with QtSvg to PNGs in the hicolor sizes
   (16..512), plus .ico (Windows) and .icns (macOS) with Pillow;
2. the PyInstaller one-folder bundle (packaging/minutely.spec) -> dist/minutely/;
3. optional: a local GGUF pair copied next to the executable (offline installs);
4. Linux: a .deb (/opt/minutely, /usr/bin/minutely, a .desktop entry, icons,
   AppStream metainfo) and a .tar.gz of the bundle, in dist/.

The version comes from app/__init__.py (``__version__``), nowhere else.
Outputs: dist/minutely/ (the bundle), dist/minutely_<ver>_<arch>.deb,
dist/minutely-<ver>-linux-<machine>.tar.gz. Intermediate files go to build/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "packaging"
NAME = "minutely"
APP_ID = "io.github.minutely.Minutely"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
SUMMARY = "Offline meeting assistant: one local model hears, reads and answers"
# MIME types the app opens (the same set as the file dialog's filter: anything PyAV decodes).
MIME_TYPES = [
    "audio/mpeg", "audio/mp4", "audio/x-m4a", "audio/aac", "audio/ogg", "audio/opus", "audio/flac",
    "audio/x-flac", "audio/wav", "audio/x-wav", "audio/webm", "audio/x-matroska", "audio/3gpp",
    "video/mp4", "video/x-matroska", "video/webm", "video/quicktime", "video/x-msvideo", "video/mpeg",
    "video/ogg", "video/3gpp",
]


def version() -> str:
    text = (ROOT / "app" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)


def log(msg: str) -> None:
    print(f"build: {msg}", flush=True)


# -- 1. icons ----------------------------------------------------------------
def make_icons(out: Path) -> Path:
    """PNG per hicolor size from the SVG (QtSvg), then .ico and .icns (Pillow)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])  # noqa: F841 (fonts, paint)
    svg = ROOT / "assets" / "minutely.svg"
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"build: cannot render {svg}")
    out.mkdir(parents=True, exist_ok=True)
    pngs = {}
    for n in ICON_SIZES:
        img = QImage(n, n, QImage.Format.Format_ARGB32_Premultiplied)
        img.fill(Qt.GlobalColor.transparent)
        p = QPainter(img)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(p)
        p.end()
        path = out / f"{n}x{n}" / f"{NAME}.png"
        path.parent.mkdir(exist_ok=True)
        if not img.save(str(path), "PNG"):
            raise SystemExit(f"build: cannot write {path}")
        pngs[n] = path
    from PIL import Image

    big = Image.open(pngs[512]).convert("RGBA")
    big.save(out / f"{NAME}.ico", sizes=[(n, n) for n in (16, 24, 32, 48, 64, 128, 256)])
    try:
        big.save(out / f"{NAME}.icns")
    except (OSError, KeyError, ValueError) as e:  # only macOS builds need it
        log(f"no .icns ({e})")
    shutil.copy2(svg, out / f"{NAME}.svg")
    return out


# -- 2. the bundle -----------------------------------------------------------
def check_portable_llama(allow_native: bool) -> str:
    """Refuse to package a llama.cpp built for one CPU (x86-64: no CPU variants).

    An installer carries the llama.cpp it was built with; one compiled with
    -march=native dies with SIGILL on users' older or different CPUs. The portable
    build (scripts/llama-flags.sh, which scripts/setup.sh uses) has one CPU
    backend per instruction-set level and picks one on the user's machine.
    """
    sys.path.insert(0, str(ROOT))
    from app.engine import backends

    found = [p.name for p in backends.variant_paths()]
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if found:
        return f"llama.cpp CPU variants: {len(found)} ({', '.join(sorted(found))})"
    if x86 and not allow_native:
        raise SystemExit("build: the installed llama.cpp links one CPU's code (no libggml-cpu-* "
                         "variants): users' CPUs may lack its instructions. Install the portable "
                         "build (bash scripts/setup.sh) or pass --allow-native-llama")
    return "llama.cpp links its CPU code (baseline flags of scripts/llama-flags.sh, or native)"


def run_pyinstaller(dist: Path, work: Path, icons: Path) -> Path:
    env = dict(os.environ, MINUTELY_ICON_DIR=str(icons), QT_QPA_PLATFORM="offscreen")
    if sys.platform == "win32":
        _write_win_version_info(ROOT / "build" / "win_version_info.txt")
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
           "--distpath", str(dist), "--workpath", str(work), str(PKG / "minutely.spec")]
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    bundle = dist / ("Minutely.app" if sys.platform == "darwin" else NAME)
    if sys.platform.startswith("linux"):
        _dedupe_libraries(bundle)
    return bundle


def _dedupe_libraries(bundle: Path) -> None:
    """Strip debug symbols; make llama.cpp's duplicate libraries links.

    libpython, the stdlib's and PyAV's extension modules and llama.cpp carry debug
    symbols (~60 MB). The libraries auditwheel grafted into wheels (``*.libs/``,
    names with a hash) are never stripped: stripping broke OpenBLAS ("ELF load
    command address/offset not page-aligned"). llama-cpp-python's wheel holds
    libX.so and libX.so.0 as two copies: libX.so becomes a link.
    """
    internal = bundle / "_internal"
    if shutil.which("strip"):
        grafted = re.compile(r"-[0-9a-f]{8}\.so|\.libs/")
        for lib in internal.rglob("*.so*"):
            rel = lib.relative_to(internal).as_posix()
            if lib.is_symlink() or not lib.is_file() or grafted.search(rel):
                continue
            if rel.startswith(("PySide6/", "shiboken6/")):
                continue  # Qt's own builds are stripped already
            subprocess.run(["strip", "--strip-debug", str(lib)], check=False,
                           stderr=subprocess.DEVNULL)
    libdir = internal / "llama_cpp" / "lib"
    for lib in libdir.glob("lib*.so"):
        versioned = sorted(lib.parent.glob(lib.name + ".[0-9]*"), key=lambda p: len(p.name))
        if versioned and not lib.is_symlink() and _same(lib, versioned[0]):
            lib.unlink()
            lib.symlink_to(versioned[0].name)


def _same(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def _write_win_version_info(path: Path) -> None:
    v = version()
    nums = (re.findall(r"\d+", v) + ["0"] * 4)[:4]
    t = ", ".join(nums)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers=({t}), prodvers=({t}), mask=0x3f, flags=0x0, OS=0x40004,
                    fileType=0x1, subtype=0x0, date=(0, 0)),
  kids=[StringFileInfo([StringTable('040904B0', [
      StringStruct('CompanyName', 'Minutely'), StringStruct('FileDescription', 'Minutely'),
      StringStruct('FileVersion', '{v}'), StringStruct('ProductName', 'Minutely'),
      StringStruct('ProductVersion', '{v}'), StringStruct('OriginalFilename', 'minutely.exe')])]),
        VarFileInfo([VarStruct('Translation', [1033, 1200])])])
""", encoding="utf-8")


# -- 3. an optional model inside ---------------------------------------------
def add_model(bundle: Path, model: Path, mmproj: Path) -> None:
    """Put a GGUF pair in <bundle>/models/ (found by app.engine.resolve as 'bundled')."""
    sys.path.insert(0, str(ROOT))
    from app.engine.gguf_check import check_pair

    check_pair(model, mmproj)  # a wrong pair fails the build, not the user's first start
    root = bundle / "Contents" / "MacOS" if bundle.suffix == ".app" else bundle
    d = root / "models"
    d.mkdir(exist_ok=True)
    for f in (model, mmproj):
        dst = d / f.name
        if dst.exists():
            dst.unlink()
        try:
            os.link(f, dst)  # same file system: no copy of gigabytes
        except OSError:
            shutil.copy2(f, dst)
    (d / "bundled.json").write_text(json.dumps({"model": model.name, "mmproj": mmproj.name}) + "\n")
    log(f"model pair added: {model.name} + {mmproj.name}")


# -- 4. Linux packages -------------------------------------------------------
def desktop_entry() -> str:
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Name=Minutely",
        "GenericName=Meeting Assistant",
        f"Comment={SUMMARY}",
        "Exec=minutely %F",
        f"Icon={NAME}",
        "Terminal=false",
        "Categories=AudioVideo;Audio;Office;",
        "Keywords=meeting;transcription;minutes;summary;dictation;speech;",
        "MimeType=" + ";".join(MIME_TYPES) + ";",
        "StartupNotify=true",
        "StartupWMClass=minutely",
        "SingleMainWindow=true",
        "",
    ])


def metainfo(ver: str) -> str:
    mimes = "\n".join(f"    <mediatype>{m}</mediatype>" for m in MIME_TYPES)
    today = time.strftime("%Y-%m-%d", time.gmtime(_source_date()))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<component type="desktop-application">
  <id>{APP_ID}</id>
  <metadata_license>CC0-1.0</metadata_license>
  <project_license>LicenseRef-proprietary</project_license>
  <name>Minutely</name>
  <summary>Offline meeting assistant</summary>
  <description>
    <p>Minutely records your meetings, takes the audio and video files you drop in, and answers
    questions about them with one local model (Gemma 4) running on your computer: speaker-attributed
    transcripts, summaries, action items, questions about screenshots and videos, dictation.</p>
    <p>After the one-time model download nothing leaves your machine.</p>
  </description>
  <launchable type="desktop-id">{NAME}.desktop</launchable>
  <icon type="stock">{NAME}</icon>
  <categories>
    <category>AudioVideo</category>
    <category>Office</category>
  </categories>
  <provides>
    <binary>{NAME}</binary>
{mimes}
  </provides>
  <recommends>
    <memory>8192</memory>
  </recommends>
  <content_rating type="oars-1.1"/>
  <releases>
    <release version="{ver}" date="{today}"/>
  </releases>
</component>
"""


LAUNCHER = """#!/bin/sh
# Minutely's launcher: runs the bundle installed under <prefix>/opt/minutely,
# where <prefix> is wherever this script's usr/bin lies (/ once installed).
here=$(dirname "$(readlink -f "$0")")
exec "$here/../../opt/minutely/minutely" "$@"
"""

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: Minutely
Comment: /opt/minutely is a PyInstaller bundle. Besides Minutely's own code it
 holds third-party components under their own licenses: Python (PSF), Qt 6 and
 PySide6 (LGPL-3.0), FFmpeg and the codec libraries of PyAV (LGPL-2.1+ / GPL-2.0+),
 llama.cpp (MIT), PortAudio (MIT), NumPy and OpenBLAS (BSD), Pillow (MIT-CMU),
 earshot (MIT), onnxruntime (MIT), Silero VAD's model (MIT), 3D-Speaker's CAM++ model
 (Apache-2.0) and pyannote's segmentation-3.0 (MIT), and others; each package's license travels in its folder where
 the wheel ships it.

Files: *
Copyright: the Minutely authors
License: LicenseRef-proprietary
"""


def _source_date() -> int:
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return int(time.time())


def _copy_tree(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)


def _share_files(root: Path, icons: Path, ver: str) -> None:
    """The desktop integration files under <root>/share (usr/share in the .deb)."""
    apps = root / "share" / "applications"
    apps.mkdir(parents=True, exist_ok=True)
    (apps / f"{NAME}.desktop").write_text(desktop_entry(), encoding="utf-8")
    for n in ICON_SIZES:
        d = root / "share" / "icons" / "hicolor" / f"{n}x{n}" / "apps"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy2(icons / f"{n}x{n}" / f"{NAME}.png", d / f"{NAME}.png")
    d = root / "share" / "icons" / "hicolor" / "scalable" / "apps"
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "assets" / "minutely.svg", d / f"{NAME}.svg")
    meta = root / "share" / "metainfo"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / f"{APP_ID}.metainfo.xml").write_text(metainfo(ver), encoding="utf-8")


def _installed_size_kib(root: Path) -> int:
    total = 0
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total // 1024 + 1


def build_deb(bundle: Path, icons: Path, out_dir: Path, work: Path, compress: str) -> Path:
    ver = version()
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    root = work / "deb-root"
    if root.exists():
        shutil.rmtree(root)
    _copy_tree(bundle, root / "opt" / NAME)
    (root / "usr" / "bin").mkdir(parents=True)
    launcher = root / "usr" / "bin" / NAME
    launcher.write_text(LAUNCHER, encoding="utf-8")
    launcher.chmod(0o755)
    _share_files(root / "usr", icons, ver)
    doc = root / "usr" / "share" / "doc" / NAME
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT, encoding="utf-8")
    control = root / "DEBIAN"
    control.mkdir()
    (control / "control").write_text("\n".join([
        f"Package: {NAME}",
        f"Version: {ver}",
        f"Architecture: {arch}",
        "Maintainer: Minutely <dev@minutely.local>",
        f"Installed-Size: {_installed_size_kib(root)}",
        # The bundle carries its libraries; these come from the system: libc, OpenGL/EGL for
        # Qt, fontconfig (the system's fonts), and ALSA (it must match the system's plugins,
        # which reach PulseAudio/PipeWire).
        "Depends: libc6 (>= 2.31), libasound2 | libasound2t64, libgl1, libegl1, libfontconfig1, "
        "libxkbcommon0",
        "Recommends: libxcb-cursor0, libpulse0 | pipewire-pulse",
        "Section: sound",
        "Priority: optional",
        "Homepage: https://github.com/minutely/minutely",
        f"Description: {SUMMARY}",
        " Minutely records meetings, takes the audio and video files you drop in and answers",
        " questions about them with one local Gemma 4 model: transcripts with speakers,",
        " summaries, action items, questions about screenshots and videos, dictation.",
        " Everything runs on this computer; the model is downloaded (or imported) once.",
        "",
    ]), encoding="utf-8")
    for d in [root, *root.rglob("*")]:  # dpkg wants 0755 folders and no group/other writes
        if d.is_dir() and not d.is_symlink():
            d.chmod(0o755)
        elif d.is_file() and not d.is_symlink():
            d.chmod(0o755 if os.access(d, os.X_OK) else 0o644)
    out = out_dir / f"{NAME}_{ver}_{arch}.deb"
    kind, _, level = compress.partition(":")
    cmd = ["dpkg-deb", "--root-owner-group", f"-Z{kind}"] + ([f"-z{level}"] if level else [])
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(_source_date()))
    subprocess.run(cmd + ["--build", str(root), str(out)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return out


def build_tar(bundle: Path, icons: Path, out_dir: Path, work: Path) -> Path:
    """The bundle as minutely-<ver>/ with share/ (desktop entry, icons) beside it."""
    ver = version()
    top = f"{NAME}-{ver}"
    stage = work / "tar-root"
    if stage.exists():
        shutil.rmtree(stage)
    _copy_tree(bundle, stage / top)
    _share_files(stage / top, icons, ver)
    out = out_dir / f"{NAME}-{ver}-linux-{platform.machine()}.tar.gz"
    env = dict(os.environ, GZIP="-6")
    subprocess.run(["tar", "-C", str(stage), "--owner=0", "--group=0", "--numeric-owner",
                    "-czf", str(out), top], check=True, env=env)
    shutil.rmtree(stage)
    return out


def size_mb(p: Path) -> float:
    if p.is_file():
        return p.stat().st_size / 1e6
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    ap.add_argument("--work", type=Path, default=ROOT / "build", help="build folder (default build/)")
    ap.add_argument("--with-model", nargs=2, type=Path, metavar=("MODEL", "MMPROJ"),
                    help="put this GGUF pair inside (an offline installer)")
    ap.add_argument("--reuse-bundle", action="store_true",
                    help="use dist/minutely as it is (skip PyInstaller if it exists)")
    ap.add_argument("--allow-native-llama", action="store_true",
                    help="package a llama.cpp built for one CPU (only for this machine's own use)")
    ap.add_argument("--no-deb", action="store_true")
    ap.add_argument("--no-tar", action="store_true")
    ap.add_argument("--deb-compress", default="xz:6",
                    help="dpkg-deb compression TYPE[:LEVEL]: xz (default, smallest), zstd, gzip, none")
    args = ap.parse_args(argv)
    dist, work = args.dist.resolve(), args.work.resolve()
    dist.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log(f"Minutely {version()} on {sys.platform}")
    log(check_portable_llama(args.allow_native_llama))
    icons = make_icons(work / "icons")
    bundle = dist / ("Minutely.app" if sys.platform == "darwin" else NAME)
    if not (args.reuse_bundle and bundle.exists()):
        t = time.perf_counter()
        bundle = run_pyinstaller(dist, work / "pyinstaller", icons)
        log(f"bundle {bundle} ({size_mb(bundle):.0f} MB) in {time.perf_counter() - t:.0f}s")
    if args.with_model:
        add_model(bundle, args.with_model[0].resolve(), args.with_model[1].resolve())
    results = {"bundle": bundle}
    if sys.platform.startswith("linux"):
        if not args.no_deb:
            if shutil.which("dpkg-deb") is None:
                log("no dpkg-deb here: skipping the .deb")
            else:
                t = time.perf_counter()
                results["deb"] = build_deb(bundle, icons, dist, work, args.deb_compress)
                log(f"deb {results['deb'].name} ({size_mb(results['deb']):.0f} MB) "
                    f"in {time.perf_counter() - t:.0f}s")
        if not args.no_tar:
            t = time.perf_counter()
            results["tar"] = build_tar(bundle, icons, dist, work)
            log(f"tar {results['tar'].name} ({size_mb(results['tar']):.0f} MB) "
                f"in {time.perf_counter() - t:.0f}s")
    log(f"done in {time.perf_counter() - t0:.0f}s: " + ", ".join(
        f"{k} {v.name} {size_mb(v):.0f} MB" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
