"""The defaults that more than one layer needs, in one place (no imports: anything may use it).

Settings offer these to the user; the engine falls back to them when it is built without
settings (the CLI's flags, tests, benchmarks); pipelines use them where an engine does not say.
"""

N_CTX = 16384        # context size in tokens: an hour of transcript plus a question
N_PARALLEL = 8       # utterances decoded together as parallel sequences (one shared KV cache)
IMAGE_TOKENS = 280    # per-image token budget (70-1120): a screenshot stays readable, a chat affordable
USER_NAME = "You"    # the person at this computer: their speaker in recordings with system audio
N_BATCH = 2048       # also the micro-batch: an image (up to 1120 tokens) is never split
N_DRAFT = 3          # tokens Gemma 4's MTP drafter proposes per decode step; 0 = no drafter
