"""``python -m syneg.llm.llama_server …``: llama-cpp-python's OpenAI-compatible server with the CPU
backend this machine needs loaded first (see :mod:`syneg.llm.cpu_backend`); every argument is
``llama_cpp.server``'s own.

``python -m llama_cpp.server`` alone finds no CPU backend in syneg's wheel, whose CPU levels load at
run time from the wheel's library folder.
"""

from __future__ import annotations

import runpy

from syneg.llm.cpu_backend import load_cpu_backend

if __name__ == "__main__":
    load_cpu_backend()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
