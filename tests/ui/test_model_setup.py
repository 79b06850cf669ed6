"""The first-run model manager as a person uses it: download from a loopback hub with pause,
resume and cancel; the disk-space check; import of a GGUF pair (copied or in place); bad files
refused in plain words. Offscreen Qt, real files, the real downloader, no sleeps."""

from __future__ import annotations

import json
import re

import pytest

from app.engine import download as download_mod
from app.engine import model_import
from app.engine.download import STAGING_DIR
from app.fmt import progress_text
from app.settings import Settings
from app.ui import model_download
from app.ui.bootstrap import build_services
from app.ui.model_download import DONE, DOWNLOADING, FAILED, IDLE, PAUSED, ModelDownloader, Rate
from app.ui.model_setup import ModelDialog, ModelSetup
from tests.support.hub import FakeHub
from tests.support.tiny_model import MMPROJ_NAME, MODEL_NAME

WAIT = 60_000  # ms; generous for a loaded machine


@pytest.fixture
def services(tmp_path):
    s = build_services(tmp_path / "home")
    yield s
    s.close()


@pytest.fixture
def changed(services, monkeypatch):
    """Counts model_changed() calls (and still tells the real worker)."""
    calls = []
    real = services.model.model_changed

    def spy():
        calls.append(1)
        real()

    monkeypatch.setattr(services.model, "model_changed", spy)
    return calls


@pytest.fixture
def hub(tiny_model, services):
    files = {MODEL_NAME: tiny_model.model.read_bytes(), MMPROJ_NAME: tiny_model.mmproj.read_bytes()}
    with FakeHub(files=files) as h:
        # the data folder's own catalogue makes the tiny pair the default to download
        models = services.data_dir / "models"
        models.mkdir(parents=True, exist_ok=True)
        (models / "catalogue.json").write_text(json.dumps({"models": [{
            "name": "tiny", "title": "Tiny Gemma 4", "repo": h.repo, "model_file": MODEL_NAME,
            "mmproj_file": MMPROJ_NAME, "model_size": len(files[MODEL_NAME]),
            "mmproj_size": len(files[MMPROJ_NAME]), "approx": False, "ram_gb": 0.2, "default": True}]}))
        h.pair = files
        yield h


@pytest.fixture
def setup(qtbot, services, hub, monkeypatch):
    monkeypatch.setattr(download_mod, "PROGRESS_INTERVAL", 0.0)  # report every block of a tiny file
    d = ModelDownloader(services, endpoint=hub.url)
    w = ModelSetup(services, downloader=d)
    qtbot.addWidget(w)
    w.show()
    yield w
    hub.release.set()
    w.shutdown()
    d.shutdown()


def saved(services) -> Settings:
    return Settings.load(services.data_dir / "settings.json")


def stall(hub, at: int = 300_000):
    import threading

    stalled = threading.Event()
    hub.stall_after_bytes, hub.on_stall = at, stalled.set
    return stalled


def partials(services) -> list:
    return list((services.data_dir / "models" / "tiny" / STAGING_DIR).glob("*.incomplete"))


# -- download -----------------------------------------------------------------------

def test_first_run_shows_what_to_do(setup, services):
    assert setup.current_label.text() == "none yet"
    assert setup.state_label.text().startswith("No model yet")
    text = setup.entry_label.text()
    assert "Tiny Gemma 4" in text and "2.9 MB to download" in text and "free on this disk" in text
    assert setup.download_button.text() == "&Download" and setup.download_button.isEnabled()
    assert not setup.pause_button.isVisible() and not setup.cancel_button.isVisible()
    for w in (setup.download_button, setup.model_edit, setup.mmproj_edit, setup.import_button,
              setup.copy_radio, setup.inplace_radio):
        assert w.accessibleName()
        assert w.focusPolicy() != w.focusPolicy().NoFocus  # reachable with the keyboard


def test_download_completes_and_the_model_is_used(qtbot, setup, services, hub, changed):
    seen = []
    setup.downloader.progress.connect(lambda d, t, r: seen.append((d, t)))
    with qtbot.waitSignal(setup.model_ready, timeout=WAIT):
        setup.download_button.click()
    total = len(hub.pair[MODEL_NAME]) + len(hub.pair[MMPROJ_NAME])
    assert seen[-1] == (total, total) and len(seen) > 2
    model = services.data_dir / "models" / "tiny" / MODEL_NAME
    assert model.read_bytes() == hub.pair[MODEL_NAME]
    s = saved(services)
    assert (s.model_path, s.model_name) == (str(model), "tiny")
    assert s.mmproj_path == str(model.parent / MMPROJ_NAME)
    assert changed == [1] and services.model.has_model()
    assert setup.downloader.state == DONE and setup.download_status.text() == "Downloaded and in use."
    assert "tiny" in setup.current_label.text()
    assert not partials(services)


def test_pause_keeps_the_partial_file_and_resume_continues_from_it(qtbot, setup, services, hub, changed):
    stalled = stall(hub)
    setup.download_button.click()
    qtbot.waitUntil(stalled.is_set, timeout=WAIT)
    # while it runs: a progress bar with bytes and a rate
    qtbot.waitUntil(lambda: setup.downloader.done_bytes >= 300_000, timeout=WAIT)
    assert setup.pause_button.isVisible() and setup.cancel_button.isVisible() and not setup.download_button.isVisible()
    assert setup.download_bar.isVisible() and setup.download_bar.value() > 0
    assert re.fullmatch(r"\d+(\.\d)? [KM]B of 2\.9 MB · \d+(\.\d)? [KMG]?B/s( · about \d+ (s|min) left)?",
                        setup.download_status.text()), setup.download_status.text()
    setup.pause_button.click()
    hub.release.set()
    qtbot.waitUntil(lambda: setup.downloader.state == PAUSED, timeout=WAIT)
    [part] = partials(services)
    have = part.stat().st_size
    assert 300_000 <= have < len(hub.pair[MODEL_NAME])
    assert setup.download_button.text() == "&Resume"
    assert setup.download_status.text().startswith("Paused at")
    assert saved(services).model_path == "" and changed == []

    before = len(hub.gets("cdn"))
    with qtbot.waitSignal(setup.model_ready, timeout=WAIT):
        setup.download_button.click()
    resumed = hub.gets("cdn")[before]
    assert resumed.status == 206 and resumed.range == f"bytes={have}-"
    assert (services.data_dir / "models" / "tiny" / MODEL_NAME).read_bytes() == hub.pair[MODEL_NAME]
    assert changed == [1]


def test_cancel_deletes_the_partial_download(qtbot, setup, services, hub, changed):
    stalled = stall(hub)
    setup.download_button.click()
    qtbot.waitUntil(stalled.is_set, timeout=WAIT)
    setup.cancel_button.click()
    hub.release.set()
    qtbot.waitUntil(lambda: setup.downloader.state == IDLE, timeout=WAIT)
    assert not partials(services) and not (services.data_dir / "models" / "tiny").exists()
    assert "cancelled" in setup.download_status.text()
    assert setup.download_button.text() == "&Download" and not setup.cancel_button.isVisible()
    assert saved(services).model_path == "" and changed == []


def test_cancel_while_paused(qtbot, setup, services, hub):
    stalled = stall(hub)
    setup.download_button.click()
    qtbot.waitUntil(stalled.is_set, timeout=WAIT)
    setup.pause_button.click()
    hub.release.set()
    qtbot.waitUntil(lambda: setup.downloader.state == PAUSED, timeout=WAIT)
    assert partials(services)
    setup.cancel_button.click()
    qtbot.waitUntil(lambda: setup.downloader.state == IDLE, timeout=WAIT)
    assert not partials(services)


def test_not_enough_disk_space_is_said_before_anything_is_fetched(qtbot, setup, services, hub, monkeypatch):
    monkeypatch.setattr(model_download, "free_bytes", lambda path: 1_000_000)
    setup.download_button.click()
    assert setup.downloader.state == FAILED
    msg = setup.download_message.text()
    assert msg.startswith("Not enough disk space: the model needs 2.9 MB more, but only 1.0 MB is free")
    assert setup.download_message.isVisible() and "\n" not in msg
    assert hub.requests == [] and not (services.data_dir / "models" / "tiny").exists()
    monkeypatch.undo()
    with qtbot.waitSignal(setup.model_ready, timeout=WAIT):
        setup.download_button.click()  # "Try again" once there is room


def test_hub_failure_in_plain_words(qtbot, setup, services, hub):
    hub.status[MODEL_NAME] = 503
    setup.download_button.click()
    qtbot.waitUntil(lambda: setup.downloader.state == FAILED, timeout=WAIT)
    assert setup.download_message.text() == \
        f"The model hub failed to send {MODEL_NAME} (HTTP 503); try again later"
    assert setup.download_button.text() == "&Try again"


def test_shared_downloader_keeps_going_while_the_dialog_is_closed(qtbot, services, hub, changed):
    d = ModelDownloader(services, endpoint=hub.url)
    stalled = stall(hub)
    try:
        dialog = ModelDialog(services, downloader=d)
        qtbot.addWidget(dialog)
        dialog.show()
        dialog.setup.download_button.click()
        qtbot.waitUntil(stalled.is_set, timeout=WAIT)
        dialog.reject()
        assert d.state == DOWNLOADING
        with qtbot.waitSignal(d.finished, timeout=WAIT):
            hub.release.set()
        assert saved(services).model_name == "tiny" and changed == [1]
        again = ModelDialog(services, downloader=d)  # opened later: shows the finished state
        qtbot.addWidget(again)
        assert again.setup.download_status.text() == "Downloaded and in use."
        assert "tiny" in again.setup.current_label.text()
    finally:
        hub.release.set()
        d.shutdown()


def test_rate_and_progress_text():
    t = [0.0]
    r = Rate(window=5.0, clock=lambda: t[0])
    r.add(1_000_000)  # a resume's head start: not a speed
    assert r.bytes_per_second() == 0.0
    for i in range(1, 11):
        t[0] = i
        r.add(1_000_000 + i * 2_000_000)
    assert r.bytes_per_second() == pytest.approx(2e6)
    assert progress_text(1_200_000_000, 8_300_000_000, 2e6) == "1.2 GB of 8.3 GB · 2.0 MB/s · about 59 min left"
    assert progress_text(500, 8_300_000_000, 0.0) == "0 KB of 8.3 GB"


# -- import ----------------------------------------------------------------------------

def test_import_copies_the_pair_and_loads_it(qtbot, setup, services, tiny_model, changed):
    setup.model_edit.setText(str(tiny_model.model))
    setup.mmproj_edit.setText(str(tiny_model.mmproj))
    assert setup.copy_radio.isChecked()
    with qtbot.waitSignal(setup.model_ready, timeout=WAIT):
        setup.import_button.click()
    dest = services.data_dir / "models" / "imported" / "tiny-gemma4"
    assert (dest / MODEL_NAME).read_bytes() == tiny_model.model.read_bytes()
    assert (dest / MMPROJ_NAME).read_bytes() == tiny_model.mmproj.read_bytes()
    s = saved(services)
    assert (s.model_path, s.mmproj_path, s.model_name) == (str(dest / MODEL_NAME), str(dest / MMPROJ_NAME),
                                                           "tiny-gemma4")
    assert changed == [1]
    assert "Imported “tiny-gemma4”" in setup.import_message.text()
    assert setup.state_label.text() == "Configured; it loads when it is first needed"
    # the state line follows the real model worker: the tiny model loads in its child process
    services.settings.n_threads, services.settings.n_ctx = 1, 2048
    services.model.preload()
    qtbot.waitUntil(lambda: setup.state_label.text() == "Loaded and ready", timeout=WAIT)


def test_import_in_place_references_the_files(qtbot, setup, services, tiny_model, changed):
    setup.model_edit.setText(str(tiny_model.model))
    setup.mmproj_edit.setText(str(tiny_model.mmproj))
    setup.inplace_radio.setChecked(True)
    with qtbot.waitSignal(setup.model_ready, timeout=WAIT):
        setup.import_button.click()
    s = saved(services)
    assert (s.model_path, s.mmproj_path) == (str(tiny_model.model.resolve()), str(tiny_model.mmproj.resolve()))
    assert not (services.data_dir / "models" / "imported").exists() and changed == [1]


def _refused(qtbot, setup, services, model, mmproj) -> str:
    setup.model_edit.setText(str(model))
    setup.mmproj_edit.setText(str(mmproj))
    got = []
    setup.model_ready.connect(lambda: got.append(1))
    setup.import_button.click()
    qtbot.waitUntil(lambda: setup.import_button.isEnabled() and setup.import_message.isVisible(), timeout=WAIT)
    assert got == [] and saved(services).model_path == ""
    assert not (services.data_dir / "models" / "imported").exists()
    msg = setup.import_message.text()
    assert msg.startswith("These files cannot be used: ") and "\n" not in msg
    return msg


def test_swapped_pair_is_refused(qtbot, setup, services, tiny_model, changed):
    msg = _refused(qtbot, setup, services, tiny_model.mmproj, tiny_model.model)
    assert msg.endswith(f"{MMPROJ_NAME} is a projector (mmproj) file, not the language model")
    assert changed == []


def test_truncated_model_is_refused(qtbot, setup, services, tiny_model, tmp_path):
    cut = tmp_path / "cut.gguf"
    data = tiny_model.model.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    msg = _refused(qtbot, setup, services, cut, tiny_model.mmproj)
    assert "truncated GGUF file: cut.gguf has" in msg and "download or copy it again" in msg


def test_missing_file_and_empty_choice(qtbot, setup, services, tiny_model, tmp_path):
    msg = _refused(qtbot, setup, services, tmp_path / "nope.gguf", tiny_model.mmproj)
    assert msg.endswith(f"the model file was not found: {tmp_path / 'nope.gguf'}")
    setup.model_edit.clear()
    setup.import_button.click()
    assert setup.import_message.text() == "Choose both files first: the model and its projector (mmproj)."


def test_copy_refused_when_the_disk_is_too_full(qtbot, setup, services, tiny_model, monkeypatch):
    monkeypatch.setattr(model_import, "free_bytes", lambda path: 1000)
    msg = _refused(qtbot, setup, services, tiny_model.model, tiny_model.mmproj)
    assert "not enough disk space to copy: need 2.9 MB, 1 KB free" in msg


def test_dialog_closes_once_a_model_is_ready(qtbot, services, tiny_model, changed):
    dialog = ModelDialog(services)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.setup.model_edit.setText(str(tiny_model.model))
    dialog.setup.mmproj_edit.setText(str(tiny_model.mmproj))
    dialog.setup.inplace_radio.setChecked(True)
    with qtbot.waitSignal(dialog.model_ready, timeout=WAIT):
        dialog.setup.import_button.click()
    assert not dialog.isVisible() and dialog.result() == dialog.DialogCode.Accepted
    assert changed == [1]
