"""The model: validate, load, prompt, generate, host, catalogue and download.

llama_cpp is imported first, before numpy or anything else that pulls in
native code: on a CUDA build of llama.cpp measured here (CUDA 13, Python 3.12),
loading numpy's libraries before llama.cpp's made llama_model_load_from_file
segfault in libstdc++ code (std::ostream inside llama_model::print_info); the
other order works. The import costs ~0.1 s.
"""

import llama_cpp  # noqa: F401  (load order matters, see above)
