"""A pure-JAX decoder-only transformer of the Llama family (Llama 2/3.x, SmolLM2, Qwen2, Qwen3, Gemma 3 text),
its loaders and tokenizer.

Import from the submodules (``sft_tilt.lm.model``, ``sft_tilt.lm.tokenizer``, ...) or from here.
"""

from sft_tilt.lm.config import *  # noqa: F401,F403
from sft_tilt.lm.model import *  # noqa: F401,F403
from sft_tilt.lm.gguf_io import *  # noqa: F401,F403
from sft_tilt.lm.hf_io import *  # noqa: F401,F403
from sft_tilt.lm.generate import *  # noqa: F401,F403
from sft_tilt.lm.tokenizer import *  # noqa: F401,F403
