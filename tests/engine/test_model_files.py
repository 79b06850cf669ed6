"""Every bad model file is refused from its header, with a one-line reason."""

from __future__ import annotations

import shutil

import pytest

from app.engine.engine import Engine, EngineConfig
from app.engine.errors import ModelError
from app.engine.gguf_check import check_pair, read_gguf
from tests.support import tiny_model as tm


def _expect(model, mmproj, *words):
    with pytest.raises(ModelError) as e:
        check_pair(model, mmproj)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    # loading refuses the same way, before llama.cpp sees the file
    with pytest.raises(ModelError) as e2:
        Engine(model, mmproj, EngineConfig(n_ctx=512, n_threads=1))
    assert str(e2.value) == msg
    return msg


def test_good_pair_passes(tiny_model):
    info = check_pair(tiny_model.model, tiny_model.mmproj)
    assert info.n_embd == tm.N_EMBD and info.has_audio and info.has_vision and info.has_chat_template
    assert info.model.data_size_needed == info.model.file_size


def test_missing_file(tiny_model, tmp_path):
    _expect(tmp_path / "nope.gguf", tiny_model.mmproj, "not found", "nope.gguf")
    _expect(tiny_model.model, tmp_path / "nope-mmproj.gguf", "not found")


def test_not_a_gguf(tiny_model, tmp_path):
    p = tmp_path / "model.gguf"
    p.write_text("<html>404 not found</html>")
    _expect(p, tiny_model.mmproj, "not a GGUF", "model.gguf")


@pytest.mark.parametrize("fraction", [0.001, 0.3, 0.999])
def test_truncated(tiny_model, tmp_path, fraction):
    data = tiny_model.model.read_bytes()
    p = tmp_path / "cut.gguf"
    p.write_bytes(data[:max(10, int(len(data) * fraction))])
    _expect(p, tiny_model.mmproj, "truncated", "cut.gguf")


def test_truncated_mmproj(tiny_model, tmp_path):
    data = tiny_model.mmproj.read_bytes()
    p = tmp_path / "mmproj-cut.gguf"
    p.write_bytes(data[:len(data) // 2])
    _expect(tiny_model.model, p, "truncated", "mmproj-cut.gguf")


def test_wrong_architecture(tiny_model, tmp_path):
    p = tm.write_model(tmp_path / "llama.gguf", arch="llama")
    msg = _expect(p, tiny_model.mmproj, "architecture", "llama", "Gemma 4")
    assert "llama.gguf" in msg


def test_files_swapped(tiny_model):
    _expect(tiny_model.mmproj, tiny_model.model, "projector (mmproj)")


@pytest.mark.parametrize("missing", ["audio", "vision"])
def test_mmproj_without_audio_or_vision(tiny_model, tmp_path, missing):
    p = tm.write_mmproj(tmp_path / f"no-{missing}.gguf", audio=missing != "audio",
                        vision=missing != "vision")
    _expect(tiny_model.model, p, f"no {missing} projector")


def test_mmproj_for_another_model_size(tiny_model, tmp_path):
    p = tm.write_mmproj(tmp_path / "mmproj-64.gguf", projection_dim=64)
    _expect(tiny_model.model, p, "width 64", f"width {tm.N_EMBD}", "does not belong")


def test_model_without_chat_template(tmp_path, tiny_model):
    p = tm.write_model(tmp_path / "notemplate.gguf", chat_template=None)
    with pytest.raises(ModelError, match="no chat template"):
        Engine(p, tiny_model.mmproj, EngineConfig(n_ctx=512, n_threads=1))


def test_header_reader_does_not_read_tensor_data(tiny_model, tmp_path):
    # A file whose header is intact but whose data is missing is caught from the
    # header alone: the reader compares the size the tensors need to the file.
    info = read_gguf(tiny_model.model)
    p = tmp_path / "hdr.gguf"
    shutil.copyfile(tiny_model.model, p)
    with open(p, "r+b") as f:
        f.truncate(info.data_size_needed - 1)
    with pytest.raises(ModelError, match="truncated"):
        read_gguf(p)
