"""Download a catalogue model pair from the hub: resumable, cancellable, verified.

A Gemma 4 pair is ~8 GB, an hour or more on a home line: a download must survive
a lost connection, a cancel and an app restart without starting over, and must
never leave a damaged file where the engine would load it.

Not ``hf_hub_download``: in huggingface_hub 2.4.0 it writes to a per-process
temp file that it deletes when the download fails or is interrupted, so the next
call starts from byte 0 (it retries only inside one call, and feeds its progress
hook 10 MB at a time, too coarse for a cancel button). So huggingface_hub gives
the URLs, the HEAD metadata (commit; sha256 of an LFS file from X-Linked-Etag,
size from X-Linked-Size), headers, its shared HTTP client and error classes, and
this module streams the bytes into ``<models>/<name>/.download/<file>.<sha>.incomplete``,
resuming later with a Range request. Plain HTTP only (no Xet); nothing touches the
user's global hub cache or stored login; no telemetry. After each file: size and
checksum against the hub's metadata, the GGUF checks, then an atomic os.replace.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from filelock import FileLock, Timeout
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

try:  # huggingface_hub >= 2 ships its own fork of httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - huggingface_hub 1.x
    import httpx  # type: ignore[no-redef]

from .. import __version__
from ..paths import models_dir as _default_models_dir
from .catalogue import STAGING_DIR, CatalogueEntry, drafter_path, local_paths
from .errors import ModelError
from .gguf_check import check_drafter, check_mmproj, check_model, check_pair

log = logging.getLogger("minutely.download")
# Same as HF_HUB_DISABLE_TELEMETRY=1 (read by huggingface_hub on each request): no
# telemetry calls, and no extra library/agent details in the User-Agent.
hf_constants.HF_HUB_DISABLE_TELEMETRY = True

ProgressFn = Callable[[int, int], None]
PROGRESS_INTERVAL = 0.1  # seconds between progress calls (at most ~10 a second)
_HASH_BLOCK = 8 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")


class DownloadError(ModelError):
    """A download failed; the message says why in one line. Partial data is kept."""


class DownloadCancelled(DownloadError):
    """The cancel event was set; the partial data is kept for the next call."""


@dataclass(frozen=True)
class _Remote:
    """One file as the hub describes it, pinned to a commit."""
    filename: str   # path in the repo
    url: str        # resolve URL at the commit (redirects to the CDN are followed)
    size: int
    sha256: str | None
    git_sha1: str | None  # only for a non-LFS file, which has no sha256

    @property
    def digest(self) -> str:
        return self.sha256 or self.git_sha1 or ""

    def hasher(self) -> hashlib._Hash:
        if self.sha256:
            return hashlib.sha256()
        h = hashlib.sha1()
        h.update(b"blob %d\0" % self.size)  # git's blob id: sha1 of header + content
        return h


class _Progress:
    """Sums both files and throttles calls to ``fn`` to one per PROGRESS_INTERVAL."""

    def __init__(self, fn: ProgressFn | None, total: int, done: int) -> None:
        self.fn, self.total, self.done = fn, total, done
        self.last = 0.0
        self.reported = -1

    def add(self, n: int) -> None:
        self.done += n
        if self.fn is not None and time.monotonic() - self.last >= PROGRESS_INTERVAL:
            self.emit()

    def emit(self) -> None:
        if self.fn is not None and self.reported != self.done:
            self.last, self.reported = time.monotonic(), self.done
            self.fn(self.done, self.total)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


@contextmanager
def _hub_errors(entry: CatalogueEntry, what: str) -> Iterator[None]:
    """Turn whatever the HTTP stack raises into a one-line DownloadError."""
    try:
        yield
    except DownloadError:
        raise
    except OfflineModeIsEnabled:
        raise DownloadError("downloads are switched off (HF_HUB_OFFLINE is set)") from None
    except httpx.ProxyError as e:
        raise DownloadError(f"cannot reach the model hub through the proxy: {_one_line(e)}") from None
    except (httpx.ConnectError, httpx.ConnectTimeout) as e:
        raise DownloadError(f"cannot reach the model hub (offline?): {_one_line(e)}") from None
    except httpx.TimeoutException:
        raise DownloadError(f"the model hub stopped answering while sending {what}; "
                            "run the download again to resume") from None
    except (httpx.RemoteProtocolError, httpx.NetworkError) as e:
        raise DownloadError(f"the download of {what} was interrupted ({_one_line(e)}); "
                            "run it again to resume") from None
    except GatedRepoError as e:
        code = e.response.status_code if e.response is not None else "?"
        raise DownloadError(f"{entry.repo} is gated (HTTP {code}): accept its terms on the model hub, "
                            "then download with a token") from None
    except RepositoryNotFoundError as e:
        code = e.response.status_code if e.response is not None else "?"
        raise DownloadError(f"repository {entry.repo} not found on the model hub, or private "
                            f"(HTTP {code})") from None
    except RevisionNotFoundError:
        raise DownloadError(f"revision '{entry.revision}' not found in {entry.repo}") from None
    except RemoteEntryNotFoundError:
        raise DownloadError(f"{what} not found in {entry.repo} at '{entry.revision}' (HTTP 404)") from None
    except HfHubHTTPError as e:
        code = e.response.status_code if e.response is not None else None
        if code is not None and code >= 500:
            raise DownloadError(f"the model hub failed to send {what} (HTTP {code}); try again later") from None
        reason = {401: "a token is missing or invalid",
                  403: "access denied: the repo may be gated, or the token lacks access",
                  404: "not found", 429: "too many requests; try again later"}.get(code or 0, "")
        raise DownloadError(f"the model hub refused {what} from {entry.repo} "
                            f"(HTTP {code}{': ' + reason if reason else ''})") from None
    except httpx.HTTPError as e:
        raise DownloadError(f"the download of {what} failed: {_one_line(e)}") from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DownloadError(f"the disk is full while writing {what}; free some space and run the "
                                "download again to resume") from None
        raise DownloadError(f"cannot write {e.filename or what}: {e.strerror or _one_line(e)}") from None


class _Hub:
    """The hub calls for one entry: metadata (HEAD) and the byte stream (GET)."""

    def __init__(self, entry: CatalogueEntry, endpoint: str | None, token: str | None) -> None:
        self.entry = entry
        self.endpoint = endpoint.rstrip("/") if endpoint else None  # None: HF_ENDPOINT or the default
        # token=False: never fall back to the login stored in the user's hub folder.
        self.token: str | bool = token or False
        self.headers = build_hf_headers(token=self.token, library_name="minutely",
                                        library_version=__version__)
        self.headers["Accept-Encoding"] = "identity"  # sizes and ranges are of the file itself

    def resolve(self, filename: str) -> _Remote:
        e = self.entry
        url = hf_hub_url(e.repo, filename, revision=e.revision, endpoint=self.endpoint)
        meta = get_hf_file_metadata(url, token=self.token, library_name="minutely",
                                    library_version=__version__, endpoint=self.endpoint)
        if not meta.commit_hash or not meta.etag or meta.size is None:
            raise DownloadError(f"{self.endpoint or hf_constants.ENDPOINT} does not answer like a model "
                                f"hub (no commit, checksum or size for {filename})")
        etag = meta.etag.lower()
        sha256 = etag if _SHA256.fullmatch(etag) else None
        git_sha1 = etag if sha256 is None and _SHA1.fullmatch(etag) else None
        if sha256 is None and git_sha1 is None:
            sha256 = self._lfs_sha256(filename, meta.commit_hash)
        return _Remote(filename, hf_hub_url(e.repo, filename, revision=meta.commit_hash,
                                             endpoint=self.endpoint),
                       meta.size, sha256, git_sha1)

    def _lfs_sha256(self, filename: str, commit: str) -> str:
        """The sha256 from the repo's file listing, when the HEAD etag is not one."""
        api = HfApi(endpoint=self.endpoint, token=self.token, library_name="minutely",
                    library_version=__version__)
        for info in api.get_paths_info(self.entry.repo, [filename], revision=commit):
            lfs = getattr(info, "lfs", None)
            if getattr(info, "path", None) == filename and lfs is not None and \
                    _SHA256.fullmatch(str(lfs.sha256).lower()):
                return str(lfs.sha256).lower()
        raise DownloadError(f"the model hub gives no sha256 for {filename}; cannot verify it")

    @contextmanager
    def stream(self, url: str, start: int) -> Iterator[httpx.Response]:
        headers = dict(self.headers)
        if start:
            headers["Range"] = f"bytes={start}-"
        timeout = httpx.Timeout(hf_constants.HF_HUB_DOWNLOAD_TIMEOUT, connect=hf_constants.HF_HUB_ETAG_TIMEOUT)
        # Redirects to the CDN are followed; the client drops Authorization off the hub's origin.
        with get_session().stream("GET", url, headers=headers, timeout=timeout,
                                  follow_redirects=True) as resp:
            if resp.status_code >= 400:
                resp.read()
                hf_raise_for_status(resp)
            yield resp


def _check_cancel(cancel: threading.Event | None, what: str) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled(f"download of {what} cancelled; run it again to resume")


def _hash_file(path: Path, h: hashlib._Hash, cancel: threading.Event | None, what: str) -> None:
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
            _check_cancel(cancel, what)


def _fetch(hub: _Hub, r: _Remote, part: Path, report: _Progress,
           cancel: threading.Event | None) -> None:
    """Bring ``part`` to the full, verified file; resume from what it holds."""
    what = PurePosixPath(r.filename).name
    h = r.hasher()
    have = _partial_size(part, r.size)
    if have:
        _hash_file(part, h, cancel, what)  # the prefix, so the final check covers the whole file
    if have < r.size:
        with hub.stream(r.url, have) as resp:
            if have and resp.status_code != 206:  # the server ignored Range: start over
                log.warning("%s: the server ignored the Range request; downloading from the start", what)
                report.add(-have)
                h, have = r.hasher(), 0
            elif have and not resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                raise DownloadError(f"the model hub answered a resume of {what} with the wrong range "
                                    f"({resp.headers.get('Content-Range')}); run it again")
            with open(part, "ab" if have else "wb") as f:
                for chunk in resp.iter_bytes():
                    if have + len(chunk) > r.size:
                        raise DownloadError(f"the model hub sent more than the {r.size:,} bytes of {what}")
                    f.write(chunk)
                    h.update(chunk)
                    have += len(chunk)
                    report.add(len(chunk))
                    _check_cancel(cancel, what)
    if have != r.size:
        raise DownloadError(f"the download of {what} was interrupted at {have:,} of {r.size:,} bytes; "
                            "run it again to resume")
    if h.hexdigest() != r.digest:
        part.unlink(missing_ok=True)
        report.add(-have)
        raise DownloadError(f"{what} is corrupted (checksum mismatch); download it again")


def _validate(path: Path, role: str, model: Path) -> None:
    """GGUF checks: the model alone; the projector and the drafter against the model's width when
    it is there."""
    if role == "model":
        check_model(path)
        return
    n_embd = None
    if model.is_file():
        info = check_model(model)
        n_embd = int(info.get(f"{info.arch}.embedding_length"))
    if role == "drafter":
        check_drafter(path, n_embd)
    else:
        check_mmproj(path, n_embd)


def _usable(path: Path, role: str, model: Path) -> bool:
    if not path.is_file():
        return False
    try:
        _validate(path, role, model)
        return True
    except ModelError as e:
        log.warning("%s is not usable (%s); downloading it again", path, e)
        path.unlink(missing_ok=True)
        return False


def _partial_size(part: Path, size: int) -> int:
    """Bytes already downloaded into ``part``; a partial larger than the file is dropped."""
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        return 0
    return have


def download(entry: CatalogueEntry, models_dir: Path | None = None, *,
             progress: ProgressFn | None = None, cancel: threading.Event | None = None,
             endpoint: str | None = None, token: str | None = None,
             with_drafter: bool = True) -> tuple[Path, Path]:
    """Download (or finish downloading) ``entry``'s pair; return the final (model, mmproj).

    The entry's MTP drafter, when it names one (and ``with_drafter``), comes with the pair: the
    same resume, checksum and GGUF checks (``check_drafter``: a gemma4-assistant for this width);
    it lands beside the model (``catalogue.drafter_path``).

    ``progress(done, total)`` counts both files, from this thread, at most ~10 times
    a second. Setting ``cancel`` stops at the next received block with
    DownloadCancelled. Every failure raises DownloadError with a one-line reason
    and keeps the verified-so-far bytes, so calling again resumes. ``endpoint``:
    the hub's base URL (default: huggingface_hub's, which honours HF_ENDPOINT);
    ``token``: a hub token, else none (the user's stored hub login is not used).
    """
    root = Path(models_dir) if models_dir is not None else _default_models_dir()
    model_path, mmproj_path = local_paths(entry, root)
    staging = model_path.parent / STAGING_DIR
    with _hub_errors(entry, entry.title):
        staging.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(staging / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise DownloadError(f"another download of {entry.name} is already running") from None
    try:
        result = _download_locked(entry, model_path, mmproj_path, staging, progress, cancel,
                                  _Hub(entry, endpoint, token), with_drafter)
    finally:
        lock.release()
    shutil.rmtree(staging, ignore_errors=True)
    return result


def _download_locked(entry: CatalogueEntry, model_path: Path, mmproj_path: Path, staging: Path,
                     progress: ProgressFn | None, cancel: threading.Event | None,
                     hub: _Hub, with_drafter: bool) -> tuple[Path, Path]:
    files = [("model", entry.model_file, model_path), ("mmproj", entry.mmproj_file, mmproj_path)]
    drafter = drafter_path(entry, model_path.parent.parent)
    if with_drafter and drafter is not None:
        files.append(("drafter", entry.drafter_file, drafter))
    present = [(role, dst) for role, _, dst in files if _usable(dst, role, model_path)]
    todo = [(role, name, dst) for role, name, dst in files if (role, dst) not in present]
    remotes: list[tuple[str, _Remote, Path, Path]] = []
    for role, name, dst in todo:
        _check_cancel(cancel, entry.title)
        with _hub_errors(entry, name):
            try:
                r = hub.resolve(name)
            except RemoteEntryNotFoundError:
                if role != "drafter":
                    raise
                # optional: the pair works without it (answers are decoded without speculation)
                log.warning("%s names the drafter %s, which %s does not have; downloading the pair "
                            "without it", entry.name, name, entry.repo)
                continue
        base = PurePosixPath(name).name
        part = staging / f"{base}.{r.digest}.incomplete"
        for stale in staging.glob(f"{glob.escape(base)}.*.incomplete"):
            if stale != part:
                stale.unlink(missing_ok=True)  # left by an older version of the file
        remotes.append((role, r, part, dst))

    have = {part: _partial_size(part, r.size) for _, r, part, _ in remotes}
    need = sum(r.size - have[part] for _, r, part, _ in remotes)
    free = shutil.disk_usage(staging).free
    if need > free:
        raise DownloadError(f"not enough disk space: need {_size(need)}, {_size(free)} free in "
                            f"{staging.parent}")
    done = sum(dst.stat().st_size for _, dst in present)
    total = done + sum(r.size for _, r, _, _ in remotes)
    report = _Progress(progress, total, done + sum(have.values()))
    report.emit()

    for role, r, part, dst in remotes:
        _check_cancel(cancel, entry.title)
        with _hub_errors(entry, PurePosixPath(r.filename).name):
            _fetch(hub, r, part, report, cancel)
            staged = staging / dst.name
            os.replace(part, staged)
            try:
                _validate(staged, role, model_path)
            except ModelError as e:
                staged.unlink(missing_ok=True)
                raise DownloadError(f"{r.filename} from {entry.repo} is not usable: {e}") from None
            os.replace(staged, dst)
        log.info("downloaded %s (%s, %s verified)", dst, _size(r.size), "sha256" if r.sha256 else "sha1")
    report.emit()
    try:
        check_pair(model_path, mmproj_path)
    except ModelError as e:
        raise DownloadError(f"the downloaded pair {entry.name} does not fit together: {e}") from None
    return model_path, mmproj_path


def is_downloaded(entry: CatalogueEntry, models_dir: Path | None = None) -> bool:
    """Both files are at their final paths and pass the GGUF checks (headers only)."""
    model, mmproj = local_paths(entry, models_dir)
    if not (model.is_file() and mmproj.is_file()):
        return False
    try:
        check_pair(model, mmproj)
        return True
    except ModelError:
        return False
