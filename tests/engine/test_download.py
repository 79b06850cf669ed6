"""The model catalogue and the resumable, verified download, against a loopback hub.

Nothing here leaves 127.0.0.1: every download goes to tests.support.hub.FakeHub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
import threading
import time

import pytest

from app.engine.catalogue import CatalogueEntry, get_entry, load_catalogue, local_paths
from app.engine.download import STAGING_DIR, DownloadCancelled, DownloadError, download, is_downloaded
from app.engine.errors import ModelError
from app.paths import models_dir
from tests.support.hub import FakeHub
from tests.support.tiny_model import DRAFTER_NAME, MMPROJ_NAME, MODEL_NAME, write_pair


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("MINUTELY_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, bytes]:
    model, mmproj = write_pair(tmp_path_factory.mktemp("pair"))
    return {MODEL_NAME: model.read_bytes(), MMPROJ_NAME: mmproj.read_bytes()}


@pytest.fixture
def hub(pair):
    with FakeHub(files=dict(pair)) as h:
        yield h


@pytest.fixture
def entry(hub) -> CatalogueEntry:
    return CatalogueEntry(name="tiny", title="Tiny Gemma 4", repo=hub.repo, revision="main",
                          model_file=MODEL_NAME, mmproj_file=MMPROJ_NAME, model_size=1,
                          mmproj_size=1, ram_gb=0.1)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- catalogue -----------------------------------------------------------------------

def test_catalogue_has_exactly_one_default():
    entries = load_catalogue()
    assert [e.default for e in entries].count(True) == 1
    e = get_entry(None)
    assert e.default and e.name == "gemma-4-12b-it-qat-q4"
    assert e.repo == "unsloth/gemma-4-12B-it-qat-GGUF" and e.revision == "main"
    assert (e.model_file, e.mmproj_file) == ("gemma-4-12B-it-qat-UD-Q4_K_XL.gguf", "mmproj-F16.gguf")
    assert e.approx and 7e9 < e.model_size < 8e9 and 0.5e9 < e.mmproj_size < 1.5e9
    assert e.total_size == e.model_size + e.mmproj_size + e.drafter_size and e.ram_gb >= 8


def test_user_catalogue_entries_are_added():
    user = {"models": [{"name": "mine", "repo": "me/my-gguf", "model_file": "m.gguf",
                        "mmproj_file": "sub/p.gguf", "model_size": 5, "default": True}]}
    (models_dir() / "catalogue.json").write_text(json.dumps(user))
    entries = {e.name: e for e in load_catalogue()}
    assert {"gemma-4-12b-it-qat-q4", "mine"} <= set(entries)
    assert get_entry(None).name == "mine"  # the user's default wins; still only one
    assert [e.default for e in entries.values()].count(True) == 1
    mine = get_entry("mine")
    assert (mine.title, mine.revision, mine.mmproj_size) == ("mine", "main", 0)
    m, p = local_paths(mine)
    assert m == models_dir() / "mine" / "m.gguf" and p == models_dir() / "mine" / "p.gguf"


BAD_NAME = json.dumps({"models": [{"name": "../evil", "repo": "a/b", "model_file": "m.gguf",
                                   "mmproj_file": "p.gguf"}]})


@pytest.mark.parametrize("text", ["{not json", BAD_NAME])
def test_invalid_user_catalogue_is_ignored(text, caplog):
    (models_dir() / "catalogue.json").write_text(text)
    with caplog.at_level(logging.WARNING):
        assert [e.name for e in load_catalogue()] == ["gemma-4-12b-it-qat-q4"]
    assert "ignoring the user model catalogue" in caplog.text


def test_unknown_name():
    with pytest.raises(ModelError, match=r"^unknown model 'nope'; known: gemma-4-12b-it-qat-q4$"):
        get_entry("nope")


# -- download ------------------------------------------------------------------------

def test_full_download(hub, entry, pair):
    calls: list[tuple[int, int]] = []
    t0 = time.monotonic()
    model, mmproj = download(entry, progress=lambda d, t: calls.append((d, t)), endpoint=hub.url)
    assert len(calls) <= 3 + 10 * (time.monotonic() - t0)  # throttled to ~10 a second
    assert (model, mmproj) == local_paths(entry) == (models_dir() / "tiny" / MODEL_NAME,
                                                       models_dir() / "tiny" / MMPROJ_NAME)
    assert model.read_bytes() == pair[MODEL_NAME] and mmproj.read_bytes() == pair[MMPROJ_NAME]
    assert is_downloaded(entry)
    assert not (model.parent / STAGING_DIR).exists()
    total = len(pair[MODEL_NAME]) + len(pair[MMPROJ_NAME])
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    done = [d for d, _ in calls]
    assert done == sorted(done) and {t for _, t in calls} == {total}
    # HEAD on the hub, bytes from the "CDN" it redirects to, no Xet, nothing else
    assert {(r.server, r.method) for r in hub.requests} <= {("hub", "HEAD"), ("hub", "GET"), ("cdn", "GET")}
    assert [r.bytes_sent for r in hub.gets("cdn")] == [len(pair[MODEL_NAME]), len(pair[MMPROJ_NAME])]
    # already there: no network at all
    n = len(hub.requests)
    assert download(entry, endpoint=hub.url) == (model, mmproj)
    assert len(hub.requests) == n


def test_interrupted_download_resumes(hub, entry, pair):
    cut = 500_000
    hub.cut_after_bytes = cut
    with pytest.raises(DownloadError, match="interrupted.*run it again to resume"):
        download(entry, endpoint=hub.url)
    model, _ = local_paths(entry)
    assert not model.exists()
    partial = list((model.parent / STAGING_DIR).glob(f"{MODEL_NAME}.*.incomplete"))
    assert len(partial) == 1
    have = partial[0].stat().st_size  # what arrived before the cut: all of it, in practice
    assert 0 < have <= cut
    assert not is_downloaded(entry)

    before = len(hub.gets("cdn"))
    download(entry, endpoint=hub.url)
    resumed = hub.gets("cdn")[before]  # the first body GET of the second call
    assert resumed.status == 206 and resumed.range == f"bytes={have}-"
    assert resumed.bytes_sent == len(pair[MODEL_NAME]) - have < len(pair[MODEL_NAME])
    assert sha(model.read_bytes()) == sha(pair[MODEL_NAME])
    assert is_downloaded(entry)


def test_corrupted_file_is_rejected(hub, entry):
    hub.corrupt = {MODEL_NAME}
    with pytest.raises(DownloadError, match=r"corrupted \(checksum mismatch\); download it again$"):
        download(entry, endpoint=hub.url)
    model, mmproj = local_paths(entry)
    assert not model.exists() and not mmproj.exists()
    assert not list((model.parent / STAGING_DIR).glob("*.incomplete"))
    hub.corrupt = set()
    download(entry, endpoint=hub.url)  # a fresh start then works
    assert is_downloaded(entry)


def test_cancel_then_resume(hub, entry, pair):
    cancel = threading.Event()
    hub.stall_after_bytes, hub.on_stall = 300_000, cancel.set
    with pytest.raises(DownloadCancelled, match="cancelled; run it again to resume"):
        download(entry, cancel=cancel, endpoint=hub.url)
    model, _ = local_paths(entry)
    partial = list((model.parent / STAGING_DIR).glob(f"{MODEL_NAME}.*.incomplete"))
    # the server set `cancel` once it had sent 300 kB; the client stops at its next block
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < len(pair[MODEL_NAME])
    have = partial[0].stat().st_size
    hub.release.set()

    download(entry, cancel=threading.Event(), endpoint=hub.url)
    assert any(r.range == f"bytes={have}-" and r.status == 206 for r in hub.gets("cdn"))
    assert model.read_bytes() == pair[MODEL_NAME]


def test_cancel_before_start_sends_nothing(hub, entry):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        download(entry, cancel=cancel, endpoint=hub.url)
    assert hub.requests == []


def test_no_server_means_offline_message(entry):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=r"^cannot reach the model hub \(offline\?\): .+") as e:
        download(entry, endpoint=f"http://127.0.0.1:{port}")
    assert "\n" not in str(e.value)


def test_not_enough_disk_space(hub, entry, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1_000_000))
    with pytest.raises(DownloadError, match=r"^not enough disk space: need \d\.\d MB, 1\.0 MB free in "):
        download(entry, endpoint=hub.url)
    assert hub.gets() == []


@pytest.mark.parametrize("case, message", [
    ("forbidden", r"^test-org/tiny-gguf is gated \(HTTP 403\): accept its terms"),
    ("server error", r"^the model hub failed to send tiny-gemma4\.gguf \(HTTP 503\); try again later$"),
    ("unauthorized", r"HTTP 401: a token is missing or invalid"),
    ("missing file", r"^nothing\.gguf not found in test-org/tiny-gguf at 'main' \(HTTP 404\)$"),
    ("missing repo", r"^repository nobody/nothing not found on the model hub, or private \(HTTP 401\)$"),
    ("missing revision", r"^revision 'v9' not found in test-org/tiny-gguf$"),
])
def test_http_errors_are_one_line(hub, entry, case, message):
    import dataclasses

    if case == "forbidden":
        hub.status[MODEL_NAME] = 403
    elif case == "server error":
        hub.status[MODEL_NAME] = 503
    elif case == "unauthorized":
        hub.status[MODEL_NAME] = 401
    elif case == "missing file":
        entry = dataclasses.replace(entry, model_file="nothing.gguf")
    elif case == "missing repo":
        entry = dataclasses.replace(entry, repo="nobody/nothing")
    else:
        entry = dataclasses.replace(entry, revision="v9")
    with pytest.raises(DownloadError, match=message) as e:
        download(entry, endpoint=hub.url)
    assert "\n" not in str(e.value)


def test_non_lfs_file_is_checked_by_git_sha1(hub, entry, pair):
    hub.lfs = False
    download(entry, endpoint=hub.url)
    assert is_downloaded(entry)
    hub.corrupt = {MMPROJ_NAME}
    shutil.rmtree(models_dir() / "tiny")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(entry, endpoint=hub.url)


def test_sha256_from_paths_info_when_etag_is_opaque(hub, entry):
    hub.opaque_etag = True
    download(entry, endpoint=hub.url)
    assert is_downloaded(entry)
    assert any(r.method == "POST" and "/paths-info/" in r.path for r in hub.requests)


def test_token_goes_to_the_hub_only(hub, entry):
    download(entry, endpoint=hub.url, token="hf_secret")
    assert all(r.headers.get("authorization") == "Bearer hf_secret"
               for r in hub.requests if r.server == "hub")
    assert hub.gets("cdn") and not any("authorization" in r.headers for r in hub.gets("cdn"))


def test_no_token_is_read_from_the_user_login(hub, entry, monkeypatch, tmp_path):
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    (hf_home / "token").write_text("hf_stored_login")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_TOKEN", "hf_env_token")
    download(entry, endpoint=hub.url)
    assert not any("authorization" in r.headers for r in hub.requests)
    assert not (hf_home / "hub").exists()  # the global cache is not used


def test_wrong_file_from_the_hub_is_not_installed(hub, entry, pair):
    hub.files[MODEL_NAME] = pair[MMPROJ_NAME]  # a projector where the model should be
    with pytest.raises(DownloadError, match="is not usable: .*projector"):
        download(entry, endpoint=hub.url)
    assert not local_paths(entry)[0].exists()


def test_second_concurrent_download_is_refused(hub, entry):
    from filelock import FileLock

    staging = models_dir() / "tiny" / STAGING_DIR
    staging.mkdir(parents=True)
    with FileLock(str(staging / ".lock")), pytest.raises(DownloadError, match="already running"):
        download(entry, endpoint=hub.url)
    assert hub.requests == []


# -- the MTP drafter beside the pair -----------------------------------------------------

@pytest.fixture(scope="module")
def drafter_bytes(tmp_path_factory) -> bytes:
    from tests.support.tiny_model import write_drafter

    return write_drafter(tmp_path_factory.mktemp("drafter") / DRAFTER_NAME).read_bytes()


def _with_drafter(entry: CatalogueEntry) -> CatalogueEntry:
    import dataclasses

    return dataclasses.replace(entry, drafter_file=DRAFTER_NAME, drafter_size=1)


def test_drafter_comes_with_the_pair_and_is_found_beside_it(hub, entry, pair, drafter_bytes):
    from app.engine.catalogue import drafter_path
    from app.engine.resolve import resolve_model

    hub.files[DRAFTER_NAME] = drafter_bytes
    entry = _with_drafter(entry)
    model, mmproj = download(entry, endpoint=hub.url)
    drafter = drafter_path(entry)
    assert drafter == model.parent / DRAFTER_NAME and drafter.read_bytes() == drafter_bytes
    # a pair chosen by path finds the drafter of the catalogue entry it came from
    user = {"models": [{"name": "tiny", "repo": hub.repo, "model_file": MODEL_NAME,
                        "mmproj_file": MMPROJ_NAME, "drafter_file": DRAFTER_NAME}]}
    (models_dir() / "catalogue.json").write_text(json.dumps(user))
    assert resolve_model(model, mmproj).drafter == drafter
    drafter.unlink()
    assert resolve_model(model, mmproj).drafter is None  # optional: the pair works without it


def test_drafter_can_be_left_out(hub, entry, pair, caplog):
    entry = _with_drafter(entry)  # the hub does not have it
    model, _ = download(entry, endpoint=hub.url, with_drafter=False)
    assert not (model.parent / DRAFTER_NAME).exists()
    assert is_downloaded(entry)
    shutil.rmtree(model.parent)
    with caplog.at_level(logging.WARNING, logger="minutely.download"):
        model, _ = download(entry, endpoint=hub.url)  # optional: a drafter the hub lacks is skipped
    assert is_downloaded(entry) and not (model.parent / DRAFTER_NAME).exists()
    assert "without it" in caplog.text


def test_a_wrong_drafter_is_not_installed(hub, entry, pair):
    hub.files[DRAFTER_NAME] = pair[MODEL_NAME]  # the model where its drafter should be
    entry = _with_drafter(entry)
    with pytest.raises(DownloadError, match="is not usable: .*not a Gemma 4 drafter"):
        download(entry, endpoint=hub.url)
    assert not (models_dir() / "tiny" / DRAFTER_NAME).exists()
    assert is_downloaded(entry)  # the pair itself is fine


def test_catalogue_drafter_file_is_checked():
    from app.engine.catalogue import parse_catalogue

    base = {"name": "x", "repo": "o/r", "model_file": "m.gguf", "mmproj_file": "p.gguf"}
    assert parse_catalogue(json.dumps({"models": [base]}))[0].drafter_file == ""
    e = parse_catalogue(json.dumps({"models": [{**base, "drafter_file": "d.gguf", "drafter_size": 5}]}))[0]
    assert (e.drafter_file, e.drafter_size) == ("d.gguf", 5)
    with pytest.raises(ValueError, match="different file names"):
        parse_catalogue(json.dumps({"models": [{**base, "drafter_file": "m.gguf"}]}))
    assert get_entry().drafter_file  # the default model comes with its drafter
