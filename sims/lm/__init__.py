"""A pure-JAX decoder-only transformer of the Llama family (Llama 2/3.x, SmolLM2, Qwen2, Qwen3, Gemma 3 text),
its loaders and tokenizer.

Import from the submodules (``sims.lm.model``, ``sims.lm.tokenizer``, ...) or from here.
"""

from sims.lm.config import *  # noqa: F401,F403
from sims.lm.model import *  # noqa: F401,F403
from sims.lm.gguf_io import *  # noqa: F401,F403
from sims.lm.hf_io import *  # noqa: F401,F403
from sims.lm.training import *  # noqa: F401,F403
from sims.lm.generate import *  # noqa: F401,F403
from sims.lm.tokenizer import *  # noqa: F401,F403
