"""Write a tiny random-weight Gemma 4 "Unified" model pair for offline tests.

    python -m tests.support.tiny_model OUTDIR

writes OUTDIR/tiny-gemma4.gguf (arch ``gemma4``, a ~600-token BPE vocabulary,
a Gemma-4-style chat template) and OUTDIR/tiny-gemma4-mmproj.gguf (arch
``clip`` with the encoder-free projectors ``gemma4uv`` for images and
``gemma4ua`` for audio). Weights are random but seeded, so the same seed gives
byte-identical files. The text the model writes is noise; every llama.cpp code
path it drives (load, mtmd init, audio and image chunks, decode, sampling,
grammar) is the real one.

The writer functions take knobs so tests can make deliberately wrong files
(a projector without audio, a projection size that does not match the model).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

MODEL_NAME = "tiny-gemma4.gguf"
MMPROJ_NAME = "tiny-gemma4-mmproj.gguf"

N_EMBD = 128
N_LAYER = 4
N_HEAD = 4
N_HEAD_KV = 2
HEAD_DIM = 32
N_FF = 256
SLIDING_WINDOW = 64
N_CTX_TRAIN = 32768
N_EMBD_VISION = 64
PATCH = 16  # times the default merge factor 3 -> 48-pixel patches
N_POS_VISION = 1120

CONTROL_TOKENS = [
    "<pad>", "<eos>", "<bos>", "<unk>",
    "<|turn>", "<turn|>",
    "<|image>", "<image|>", "<|audio>", "<audio|>",
    "<|image|>", "<|audio|>", "<|video|>",
    "<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>",
    "<|tool_response>", "<tool_response|>", '<|"|>',
]

# A Gemma-4-style template: the same turn markers and content-part handling
# as Google's, without the tool-calling machinery the tests do not need.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{- '<|turn>' + role + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] | trim -}}"
    "{%- else -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'text' -%}{{- item['text'] | trim -}}"
    "{%- elif item['type'] == 'image' -%}{{- '<|image|>' -}}"
    "{%- elif item['type'] == 'audio' -%}{{- '<|audio|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<turn|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|turn>model\\n' -}}"
    "{%- if not enable_thinking | default(false) -%}{{- '<|channel>thought\\n<channel|>' -}}{%- endif -%}"
    "{%- endif -%}"
)

CORPUS = """
the meeting starts now and we talk about the budget for the next quarter
please summarize what was said and list the action items with owners
who will send the report to the team before friday at noon
describe the image on the screen and the chart with the sales numbers
transcribe the audio and say which speaker said what in the meeting
we decided to move the launch date and hire two more engineers
hello world this is a test of the tiny model with audio and images
"""

SPACE = "\u2581"


def _train_bpe(corpus: str, n_merges: int) -> tuple[list[str], list[str]]:
    """A minimal BPE trainer: returns (merged tokens, merges)."""
    words = collections.Counter(
        SPACE + w for w in corpus.split()
    )
    splits = {w: list(w) for w in words}
    merges: list[str] = []
    tokens: list[str] = []
    for _ in range(n_merges):
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for w, n in words.items():
            s = splits[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        (a, b), _count = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        tokens.append(a + b)
        for w in words:
            s = splits[w]
            i, out = 0, []
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            splits[w] = out
    return tokens, merges


def build_vocab() -> tuple[list[str], list[int], list[float], list[str]]:
    tokens: list[str] = list(CONTROL_TOKENS)
    types: list[int] = [3] * len(CONTROL_TOKENS)
    types[3] = 2  # <unk>
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(6)
    chars = [SPACE, "\n"] + [chr(c) for c in range(33, 127)]
    for c in chars:
        tokens.append(c)
        types.append(1)
    merged, merges = _train_bpe(CORPUS, 200)
    seen = set(tokens)
    for t in merged:
        if t not in seen:
            seen.add(t)
            tokens.append(t)
            types.append(1)
    scores = [0.0] * len(tokens)
    return tokens, types, scores, merges


def write_model(path: Path, *, seed: int = 0, n_embd: int = N_EMBD,
                arch: str = "gemma4", chat_template: str | None = CHAT_TEMPLATE,
                n_layer: int = N_LAYER, n_head: int = N_HEAD, n_head_kv: int = N_HEAD_KV,
                head_dim: int = HEAD_DIM, n_ff: int = N_FF, tied: bool = False,
                scale: float = 0.05) -> Path:
    """The text model. The size knobs make bigger random models for benchmarks, where
    the cost of reading the weights, not Python, should dominate a decode step. ``tied``: no
    separate output head (the token embeddings are the head): greedy text repeats tokens, the
    more so the smaller ``scale`` (the random weights' size) leaves the layers against the
    embedding in the residual stream."""
    import gguf

    rng = np.random.default_rng(seed)
    tokens, types, scores, merges = build_vocab()
    n_vocab = len(tokens)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float16)

    def ones(*shape: int) -> np.ndarray:
        return np.ones(shape, dtype=np.float32)

    w = gguf.GGUFWriter(str(path), arch)
    p = arch + "."
    w.add_string("general.name", "tiny-gemma4-test")
    w.add_uint32(p + "context_length", N_CTX_TRAIN)
    w.add_uint32(p + "embedding_length", n_embd)
    w.add_uint32(p + "block_count", n_layer)
    w.add_uint32(p + "feed_forward_length", n_ff)
    w.add_uint32(p + "attention.head_count", n_head)
    w.add_uint32(p + "attention.head_count_kv", n_head_kv)
    w.add_uint32(p + "attention.key_length", head_dim)
    w.add_uint32(p + "attention.value_length", head_dim)
    w.add_uint32(p + "attention.key_length_swa", head_dim)
    w.add_uint32(p + "attention.value_length_swa", head_dim)
    w.add_float32(p + "attention.layer_norm_rms_epsilon", 1e-6)
    w.add_uint32(p + "attention.sliding_window", SLIDING_WINDOW)
    w.add_array(p + "attention.sliding_window_pattern", [i % 4 != 3 for i in range(n_layer)])
    w.add_uint32(p + "attention.shared_kv_layers", 0)
    w.add_uint32(p + "embedding_length_per_layer_input", 0)
    w.add_uint32(p + "rope.dimension_count", head_dim)
    w.add_uint32(p + "rope.dimension_count_swa", head_dim)
    w.add_float32(p + "rope.freq_base", 1_000_000.0)
    w.add_float32(p + "rope.freq_base_swa", 10_000.0)
    w.add_float32(p + "final_logit_softcapping", 30.0)

    w.add_string("tokenizer.ggml.model", "gemma4")
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.token_type", types)
    w.add_array("tokenizer.ggml.scores", scores)
    w.add_array("tokenizer.ggml.merges", merges)
    w.add_uint32("tokenizer.ggml.bos_token_id", tokens.index("<bos>"))
    w.add_uint32("tokenizer.ggml.eos_token_id", tokens.index("<eos>"))
    w.add_uint32("tokenizer.ggml.unknown_token_id", tokens.index("<unk>"))
    w.add_uint32("tokenizer.ggml.padding_token_id", tokens.index("<pad>"))
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    if chat_template is not None:
        w.add_string("tokenizer.chat_template", chat_template)

    E, H, Hkv, hd, F = n_embd, n_head, n_head_kv, head_dim, n_ff
    w.add_tensor("token_embd.weight", (rng.standard_normal((n_vocab, E)) * 0.05).astype(np.float16))
    w.add_tensor("output_norm.weight", ones(E))
    if not tied:
        w.add_tensor("output.weight", rand(n_vocab, E))
    w.add_tensor("rope_freqs.weight", ones(hd // 2))
    for i in range(n_layer):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", ones(E))
        w.add_tensor(b + "attn_q.weight", rand(hd * H, E))
        w.add_tensor(b + "attn_k.weight", rand(hd * Hkv, E))
        w.add_tensor(b + "attn_v.weight", rand(hd * Hkv, E))
        w.add_tensor(b + "attn_output.weight", rand(E, hd * H))
        w.add_tensor(b + "attn_q_norm.weight", ones(hd))
        w.add_tensor(b + "attn_k_norm.weight", ones(hd))
        w.add_tensor(b + "post_attention_norm.weight", ones(E))
        w.add_tensor(b + "ffn_norm.weight", ones(E))
        w.add_tensor(b + "ffn_gate.weight", rand(F, E))
        w.add_tensor(b + "ffn_up.weight", rand(F, E))
        w.add_tensor(b + "ffn_down.weight", rand(E, F))
        w.add_tensor(b + "post_ffw_norm.weight", ones(E))
    _finish(w)
    return path


DRAFTER_NAME = "tiny-gemma4-drafter.gguf"
N_EMBD_DRAFTER = 64


def write_drafter(path: Path, *, seed: int = 2, target_embd: int = N_EMBD, n_embd: int = N_EMBD_DRAFTER,
                  n_layer: int = 2, n_head: int = N_HEAD, n_head_kv: int = N_HEAD_KV,
                  head_dim: int = HEAD_DIM, n_ff: int = N_FF, arch: str = "gemma4-assistant",
                  echo_of: Path | None = None) -> Path:
    """A Multi-Token-Prediction drafter for the tiny model (arch ``gemma4-assistant``, as
    llama.cpp's converter writes Google's ``*-it-assistant`` checkpoints): a narrower model with
    no K/V weights (it reads the target's cache: its sliding-window layer the target's second-to-last
    layer, its full layer the last), ``embedding_length_out`` = the target's width, the pre/post
    projections between the two widths, and the same vocabulary. Random weights: it proposes noise,
    which the target rejects, so it exercises the machinery, not the speed-up.

    ``echo_of`` (the target's GGUF): a drafter that proposes the token it is given again. Its
    layers are zero (the residual stream passes through), the pre-projection keeps the target's
    token embedding (times a random projection P) and drops the hidden state, and its head holds
    P times every token's embedding: the best match is the token itself. Against a target that
    repeats itself (``write_model(tied=True)``) every proposal is right: the speed-up path."""
    import gguf

    rng = np.random.default_rng(seed)
    tokens, types, scores, merges = build_vocab()
    n_vocab = len(tokens)

    def rand(*shape: int) -> np.ndarray:
        a = rng.standard_normal(shape) * 0.05
        return (a * 0 if echo_of is not None else a).astype(np.float16)

    def ones(*shape: int) -> np.ndarray:
        return np.ones(shape, dtype=np.float32)

    w = gguf.GGUFWriter(str(path), arch)
    p = arch + "."
    w.add_string("general.name", "tiny-gemma4-drafter-test")
    w.add_uint32(p + "context_length", N_CTX_TRAIN)
    w.add_uint32(p + "embedding_length", n_embd)
    w.add_uint32(p + "embedding_length_out", target_embd)
    w.add_uint32(p + "block_count", n_layer)
    w.add_uint32(p + "nextn_predict_layers", n_layer)
    w.add_uint32(p + "feed_forward_length", n_ff)
    w.add_uint32(p + "attention.head_count", n_head)
    w.add_uint32(p + "attention.head_count_kv", n_head_kv)
    for key in ("key_length", "value_length", "key_length_swa", "value_length_swa"):
        w.add_uint32(p + "attention." + key, head_dim)
    w.add_float32(p + "attention.layer_norm_rms_epsilon", 1e-6)
    w.add_uint32(p + "attention.sliding_window", SLIDING_WINDOW)
    w.add_array(p + "attention.sliding_window_pattern", [i != n_layer - 1 for i in range(n_layer)])
    w.add_uint32(p + "rope.dimension_count", head_dim)
    w.add_uint32(p + "rope.dimension_count_swa", head_dim)
    w.add_float32(p + "rope.freq_base", 1_000_000.0)
    w.add_float32(p + "rope.freq_base_swa", 10_000.0)
    w.add_string("tokenizer.ggml.model", "gemma4")
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.token_type", types)
    w.add_array("tokenizer.ggml.scores", scores)
    w.add_array("tokenizer.ggml.merges", merges)
    w.add_uint32("tokenizer.ggml.bos_token_id", tokens.index("<bos>"))
    w.add_uint32("tokenizer.ggml.eos_token_id", tokens.index("<eos>"))
    w.add_uint32("tokenizer.ggml.unknown_token_id", tokens.index("<unk>"))
    w.add_uint32("tokenizer.ggml.padding_token_id", tokens.index("<pad>"))

    E, Eb, H, hd, F = n_embd, target_embd, n_head, head_dim, n_ff
    if echo_of is None:
        w.add_tensor("token_embd.weight", (rng.standard_normal((n_vocab, E)) * 0.05).astype(np.float16))
        w.add_tensor("nextn.pre_projection.weight", rand(E, 2 * Eb))
    else:
        target = gguf.GGUFReader(str(echo_of)).get_tensor(0)
        assert target.name == "token_embd.weight"
        t_embd = np.asarray(target.data, dtype=np.float32).reshape(n_vocab, Eb)
        proj = (rng.standard_normal((E, Eb)) / np.sqrt(Eb)).astype(np.float32)
        w.add_tensor("token_embd.weight", (t_embd @ proj.T).astype(np.float16))
        w.add_tensor("nextn.pre_projection.weight",
                     np.concatenate([proj, np.zeros((E, Eb), np.float32)], axis=1).astype(np.float16))
    w.add_tensor("output_norm.weight", ones(E))
    w.add_tensor("nextn.post_projection.weight", rand(Eb, E))
    w.add_tensor("rope_freqs.weight", ones(hd // 2))
    for i in range(n_layer):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", ones(E))
        w.add_tensor(b + "attn_q.weight", rand(hd * H, E))
        w.add_tensor(b + "attn_output.weight", rand(E, hd * H))
        w.add_tensor(b + "attn_q_norm.weight", ones(hd))
        w.add_tensor(b + "post_attention_norm.weight", ones(E))
        w.add_tensor(b + "layer_output_scale.weight", ones(1))
        w.add_tensor(b + "ffn_norm.weight", ones(E))
        w.add_tensor(b + "ffn_gate.weight", rand(F, E))
        w.add_tensor(b + "ffn_up.weight", rand(F, E))
        w.add_tensor(b + "ffn_down.weight", rand(E, F))
        w.add_tensor(b + "post_ffw_norm.weight", ones(E))
    _finish(w)
    return path


def write_mmproj(path: Path, *, seed: int = 1, projection_dim: int = N_EMBD,
                 vision: bool = True, audio: bool = True) -> Path:
    import gguf

    rng = np.random.default_rng(seed)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float16)

    w = gguf.GGUFWriter(str(path), "clip")
    w.add_string("general.type", "mmproj")
    w.add_string("general.name", "tiny-gemma4-mmproj-test")
    w.add_bool("clip.has_vision_encoder", vision)
    w.add_bool("clip.has_audio_encoder", audio)
    if vision:
        v = "clip.vision."
        w.add_string(v + "projector_type", "gemma4uv")
        w.add_uint32(v + "embedding_length", N_EMBD_VISION)
        w.add_uint32(v + "feed_forward_length", 0)
        w.add_uint32(v + "block_count", 0)
        w.add_uint32(v + "attention.head_count", 0)
        w.add_uint32(v + "projection_dim", projection_dim)
        w.add_float32(v + "attention.layer_norm_epsilon", 1e-6)
        w.add_uint32(v + "image_size", 768)
        w.add_uint32(v + "patch_size", PATCH)
        w.add_array(v + "image_mean", [0.5, 0.5, 0.5])
        w.add_array(v + "image_std", [0.5, 0.5, 0.5])
        n_in = (PATCH * 3) ** 2 * 3  # 48x48 RGB patch = 6912 values
        w.add_tensor("v.patch_norm.1.weight", np.ones(n_in, dtype=np.float32))
        w.add_tensor("v.patch_norm.1.bias", np.zeros(n_in, dtype=np.float32))
        w.add_tensor("v.patch_embd.weight", rand(N_EMBD_VISION, n_in))
        w.add_tensor("v.patch_embd.bias", np.zeros(N_EMBD_VISION, dtype=np.float32))
        w.add_tensor("v.patch_norm.2.weight", np.ones(N_EMBD_VISION, dtype=np.float32))
        w.add_tensor("v.patch_norm.2.bias", np.zeros(N_EMBD_VISION, dtype=np.float32))
        w.add_tensor("v.position_embd.weight", rand(2, N_POS_VISION, N_EMBD_VISION))
        w.add_tensor("v.patch_norm.3.weight", np.ones(N_EMBD_VISION, dtype=np.float32))
        w.add_tensor("v.patch_norm.3.bias", np.zeros(N_EMBD_VISION, dtype=np.float32))
        w.add_tensor("mm.input_projection.weight", rand(projection_dim, N_EMBD_VISION))
    if audio:
        a = "clip.audio."
        w.add_string(a + "projector_type", "gemma4ua")
        w.add_uint32(a + "embedding_length", 640)
        w.add_uint32(a + "feed_forward_length", 0)
        w.add_uint32(a + "block_count", 0)
        w.add_uint32(a + "attention.head_count", 0)
        w.add_uint32(a + "projection_dim", projection_dim)
        w.add_float32(a + "attention.layer_norm_epsilon", 1e-6)
        w.add_uint32(a + "num_mel_bins", 128)
        w.add_tensor("mm.a.input_projection.weight", rand(projection_dim, 640))
    _finish(w)
    return path


def _finish(w) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_pair(outdir: Path, seed: int = 0) -> tuple[Path, Path]:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    model = write_model(outdir / MODEL_NAME, seed=seed)
    mmproj = write_mmproj(outdir / MMPROJ_NAME, seed=seed + 1)
    return model, mmproj


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.support.tiny_model",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    model, mmproj = write_pair(args.outdir, args.seed)
    print(model)
    print(mmproj)
    return 0


if __name__ == "__main__":
    sys.exit(main())
