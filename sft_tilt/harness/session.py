"""A harness session: one model, one data configuration, their encoded sets and base-model evaluation.

Everything every run of a sweep shares is built once here: the loaded model and tokenizer, the domain
splits in both formats, the three general sets, and the initial model's evaluation (domain and general
losses, target-token statistics, FLOW's per-sequence losses, greedy accuracy), which is cached on disk
keyed by the model file's fingerprint, the data configuration and the code key of this module (its source
and every repository module it imports).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from sft_tilt.harness.data_files import DataFile, read_domain_file, read_general_file, split_examples
from sft_tilt.harness.encoding import EncodedSet, encode_answer_mask, encode_chat_set, encode_text_set
from sft_tilt.harness.general_sets import INSTRUCTIONS, code_texts, docs_texts
from sft_tilt.harness.measure import (answer_accuracy, greedy_accuracy, mean_nll, probability_stats, sequence_mean_nll,
                                  set_token_scores, top1_rate)
from sft_tilt.harness.medcalc import FORMATS, SYSTEM_PROMPT, answer_start
from sft_tilt.harness.medcalc_bench import CALCULATORS, make_splits
from sft_tilt.store import cached, code_key, content_key

__all__ = ["DataConfig", "Session", "get_session", "model_fingerprint", "model_sha256"]

_MODEL_SHA256: dict = {}


def model_sha256(path: str | os.PathLike) -> str:
    """Full SHA-256 (hex) of a model file, or of a checkpoint folder: of its regular files in name order, each as
    name, NUL, the file's SHA-256. Memoised per process by path, sizes and modification times."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"path: model {path} does not exist")
    files = [path] if path.is_file() else sorted((f for f in path.iterdir() if f.is_file()), key=lambda f: f.name)
    stamp = (str(path.resolve()), tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if stamp not in _MODEL_SHA256:
        digests = []
        for f in files:
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
            digests.append((f.name, h.digest()))
        if path.is_file():
            _MODEL_SHA256[stamp] = digests[0][1].hex()
        else:
            folder = hashlib.sha256()
            for name, digest in digests:
                folder.update(name.encode() + b"\0" + digest)
            _MODEL_SHA256[stamp] = folder.hexdigest()
    return _MODEL_SHA256[stamp]


def model_fingerprint(path: str | os.PathLike) -> str:
    """The model's identity in run and cache keys: the first 16 hex digits of :func:`model_sha256` (one hash of
    the file serves the keys and the provenance)."""
    return model_sha256(path)[:16]


@dataclass(frozen=True)
class DataConfig:
    """Sizes of every data set a session builds (see module docstrings of medcalc_bench / general_sets)."""

    n_train: int = 16
    n_heldout: int = 8
    data_seed: int = 0
    calculators: tuple[str, ...] | None = None
    seq_len_cot: int = 192
    seq_len_label: int = 128
    seq_len_general: int = 128
    n_self: int = 8
    self_max_new_tokens: int = 48
    n_docs: int = 4
    n_code: int = 4
    eval_batch: int = 4
    n_accuracy: int = 4
    accuracy_max_new_tokens_cot: int = 80
    accuracy_max_new_tokens_label: int = 12
    n_unseen: int = 0  # held-out examples of calculators never trained on
    unseen_calculators: tuple[str, ...] | None = None  # those calculators (None: medcalc_bench.HELDOUT_CALCULATORS)
    n_choice: int = 0  # general multiple-choice items (general_choice), scored at every evaluation point
    domain_data: DataFile | None = None  # a user's domain problems instead of the generated ones (data_files)
    general_data: DataFile | None = None  # a user's general set "data", measured beside self, docs and code

    def __post_init__(self):
        for name in ("n_unseen", "n_choice"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name}: must be a non-negative int, got {v!r}")
        if self.n_unseen and self.domain_data is not None:
            raise ValueError("n_unseen: unseen calculators exist only in the generated domain, not with domain_data")
        for name in ("n_train", "n_heldout", "seq_len_cot", "seq_len_label", "seq_len_general", "n_self",
                     "self_max_new_tokens", "n_docs", "n_code", "eval_batch", "accuracy_max_new_tokens_cot",
                     "accuracy_max_new_tokens_label"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: must be a positive int, got {v!r}")
        if not isinstance(self.n_accuracy, int) or self.n_accuracy < 0 or self.n_accuracy > self.n_heldout:
            raise ValueError(f"n_accuracy: must be in [0, n_heldout={self.n_heldout}], got {self.n_accuracy!r}")
        if self.n_self > len(INSTRUCTIONS):
            raise ValueError(f"n_self: at most {len(INSTRUCTIONS)} instructions exist, got {self.n_self}")
        for name in ("domain_data", "general_data"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), DataFile):
                raise ValueError(f"{name}: expected a sft_tilt.harness.data_files.DataFile, got {type(getattr(self, name)).__name__}")
        if self.domain_data is not None and self.calculators is not None:
            raise ValueError("calculators: choose calculators of the generated domain or a domain_data file, not both")
        if self.unseen_calculators is not None:
            unknown = [c for c in self.unseen_calculators if c not in CALCULATORS]
            if unknown or not self.unseen_calculators:
                raise ValueError(f"unseen_calculators: unknown or empty {unknown}; known {sorted(CALCULATORS)}")
            if self.calculators is not None and set(self.calculators) & set(self.unseen_calculators):
                raise ValueError(f"unseen_calculators: {sorted(set(self.calculators) & set(self.unseen_calculators))} "
                                 "are also trained on (calculators)")
        if self.calculators is not None:
            unknown = [c for c in self.calculators if c not in CALCULATORS]
            if unknown or not self.calculators:
                raise ValueError(f"calculators: unknown or empty {unknown}; known {sorted(CALCULATORS)}")

    def seq_len(self, fmt: str) -> int:
        if fmt not in FORMATS:
            raise ValueError(f"fmt: must be one of {FORMATS}, got {fmt!r}")
        return self.seq_len_cot if fmt == "cot" else self.seq_len_label


def _load_model(model: str, tokenizer: str | None):
    from sft_tilt.lm.tokenizer import Tokenizer

    path = Path(model)
    if path.is_dir():
        from sft_tilt.lm.hf_io import load_hf_checkpoint

        config, params = load_hf_checkpoint(path)
        tok = Tokenizer.from_hf(path) if tokenizer is None else _tokenizer_from(tokenizer)
    else:
        from sft_tilt.lm.gguf_io import load_gguf

        config, params = load_gguf(path)
        tok = _tokenizer_from(tokenizer or path)
    params = {k: v for k, v in params.items()}
    import jax

    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), params)
    if tok.vocab_size > config.vocab_size:
        raise ValueError(f"tokenizer: vocabulary {tok.vocab_size} larger than the model's {config.vocab_size}")
    return config, params, tok


def _tokenizer_from(source):
    from sft_tilt.lm.tokenizer import Tokenizer

    source = Path(source)
    return Tokenizer.from_hf(source) if source.is_dir() else Tokenizer.from_gguf(source)


@dataclass
class Session:
    """Loaded model, tokenizer, encoded sets and (lazily) the base evaluation of one (model, data) pair."""

    model: str
    tokenizer_source: str | None
    data: DataConfig
    config: object = field(init=False)
    params: dict = field(init=False, repr=False)
    tokenizer: object = field(init=False, repr=False)
    fingerprint: str = field(init=False)

    def __post_init__(self):
        self.config, self.params, self.tokenizer = _load_model(self.model, self.tokenizer_source)
        self.fingerprint = model_fingerprint(self.model)
        if self.data.domain_data is not None:
            self.splits = split_examples(read_domain_file(self.data.domain_data), self.data.n_train, self.data.n_heldout,
                                         self.data.data_seed)
        else:
            self.splits = make_splits(self.data.n_train, self.data.n_heldout, self.data.data_seed, self.data.calculators,
                                      heldout_calculators=self.data.unseen_calculators, n_unseen=self.data.n_unseen)
        self.pad_id = int(self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0)
        self.train: dict[str, EncodedSet] = {}
        self.heldout: dict[str, EncodedSet] = {}
        self.unseen: dict[str, EncodedSet] = {}
        self.answer_masks: dict[tuple[str, str], np.ndarray] = {}  # (split, fmt) -> encode_answer_mask
        for fmt in FORMATS:
            n = self.data.seq_len(fmt)
            self.train[fmt] = encode_chat_set(self.tokenizer, [(e.prompt, e.response(fmt)) for e in self.splits.train], n, self.pad_id, SYSTEM_PROMPT)
            self.heldout[fmt] = self._encode_graded("heldout", fmt, self.splits.heldout, n)
            if self.splits.unseen:  # other calculators' explanations may be longer: the window fits the longest
                longest = max(len(self.tokenizer.encode_chat_example(e.prompt, e.response(fmt), system=SYSTEM_PROMPT)[0])
                              for e in self.splits.unseen)
                self.unseen[fmt] = self._encode_graded("unseen", fmt, self.splits.unseen, max(n, longest))
        self._general: dict[str, EncodedSet] | None = None
        self._base: dict | None = None
        self.progress = True  # progress bars of the session's own one-off computations (get_session sets it)

    def _encode_graded(self, split: str, fmt: str, examples, seq_len: int) -> EncodedSet:
        pairs = [(e.prompt, e.response(fmt)) for e in examples]
        self.answer_masks[split, fmt] = encode_answer_mask(self.tokenizer, pairs, [answer_start(r) for _, r in pairs],
                                                           seq_len, SYSTEM_PROMPT)
        return encode_chat_set(self.tokenizer, pairs, seq_len, self.pad_id, SYSTEM_PROMPT)

    # -- identity ------------------------------------------------------------------------------------

    def key_material(self) -> dict:
        return {"model": self.fingerprint, "tokenizer": str(self.tokenizer_source or ""), "data": self.data}

    # -- general sets ------------------------------------------------------------------------------------

    def self_responses(self) -> list[str]:
        """The initial model's greedy responses to the first ``n_self`` instructions (generated once, cached)."""
        material = {**self.key_material(), "what": "self_responses", "instructions": INSTRUCTIONS[: self.data.n_self],
                    "max_new_tokens": self.data.self_max_new_tokens, "code": code_key(__name__)}

        def compute():
            from sft_tilt.lm.generate import generate_greedy_many

            instructions = INSTRUCTIONS[: self.data.n_self]
            prompts = [self.tokenizer.encode_chat([{"role": "user", "content": instr}], add_generation_prompt=True)
                       for instr in instructions]
            out = []
            for new in generate_greedy_many(self.params, self.config, prompts, self.data.self_max_new_tokens,
                                            eos_id=self.tokenizer.eos_id,  # the new tokens only, ending before eos
                                            progress="general set (a): base-model responses" if self.progress else None):
                text = self.tokenizer.decode(new, skip_special_tokens=True).strip()
                out.append(text if text else ".")
            return out

        return cached("harness_self_responses", material, compute)

    @property
    def general(self) -> dict[str, EncodedSet]:
        if self._general is None:
            n = self.data.seq_len_general
            pairs = list(zip(INSTRUCTIONS[: self.data.n_self], self.self_responses()))
            longest = max(len(self.tokenizer.encode_chat_example(p, r)[0]) for p, r in pairs)
            self._general = {
                "self": encode_chat_set(self.tokenizer, pairs, max(n, longest), self.pad_id),
                "docs": encode_text_set(self.tokenizer, docs_texts(self.data.n_docs), n, self.pad_id),
                "code": encode_text_set(self.tokenizer, code_texts(self.data.n_code), n, self.pad_id),
            }
            if self.data.general_data is not None:
                texts, pairs = read_general_file(self.data.general_data)
                if texts:
                    self._general["data"] = encode_text_set(self.tokenizer, texts, n, self.pad_id)
                else:
                    longest = max(len(self.tokenizer.encode_chat_example(p, r)[0]) for p, r in pairs)
                    self._general["data"] = encode_chat_set(self.tokenizer, pairs, max(n, longest), self.pad_id)
        return self._general

    # -- evaluation ----------------------------------------------------------------------------------------

    def evaluate(self, params, fmt: str, with_train_stats: bool = False, finite_only: bool = False,
                 engine: str = "reference") -> dict | None:
        """Held-out domain loss, statistics and teacher-forced accuracies in ``fmt``, every general set's loss
        (nats/token) and next-token accuracy, the unseen calculators' loss and answer accuracy (``n_unseen``), and
        the general multiple-choice accuracy (``n_choice``).

        ``answer_accuracy``: the fraction of held-out problems whose answer tokens are all the model's top-1 given
        the reference response before them (``measure.answer_accuracy``; over the problems with an answer).
        ``answer_token_accuracy``: the fraction of those answer tokens that are top-1 (a finer grade: partly right
        answers count in part).
        ``general_top1``: per general set, the fraction of targets that are top-1; on ``"self"`` (the base model's
        own greedy responses) it is the agreement with the base model's greedy answers.
        With ``finite_only``, None as soon as a set's token losses are not all finite (a diverged model).
        ``engine="fast"`` scores batches of rows of similar lengths cut to their targets
        (:func:`sft_tilt.harness.engines.trimmed_set_token_scores`; the same numbers to float32 round-off).
        """
        from sft_tilt.harness import engines

        b = self.data.eval_batch
        token_scores = set_token_scores if engines.check_engine(engine) == "reference" else engines.trimmed_set_token_scores

        def scores(enc):
            l, top1, m = token_scores(params, self.config, enc, b)
            return (None, top1, m) if finite_only and not np.isfinite(l[m > 0]).all() else (l, top1, m)

        def graded_accuracy(split, top1):
            answer_mask = self.answer_masks[split, fmt]
            has = answer_mask.sum(axis=1) > 0
            return answer_accuracy(top1[has], answer_mask[has]) if has.any() else float("nan")

        def answer_token_accuracy(split, top1):
            answer_mask = self.answer_masks[split, fmt]
            return top1_rate(top1, answer_mask) if answer_mask.any() else float("nan")

        dl, dtop1, dm = scores(self.heldout[fmt])
        if dl is None:
            return None
        out = {"domain_loss": mean_nll(dl, dm), "heldout_stats": probability_stats(dl, dm),
               "answer_accuracy": graded_accuracy("heldout", dtop1),
               "answer_token_accuracy": answer_token_accuracy("heldout", dtop1), "domain_top1": top1_rate(dtop1, dm),
               "general": {}, "general_top1": {}}
        for name in self.general:  # GENERAL_SETS, and "data" with a general_data file
            gl, gtop1, gm = scores(self.general[name])
            if gl is None:
                return None
            out["general"][name] = mean_nll(gl, gm)
            out["general_top1"][name] = top1_rate(gtop1, gm)
        if fmt in self.unseen:
            ul, utop1, um = scores(self.unseen[fmt])
            if ul is None:
                return None
            out["unseen"] = {"loss": mean_nll(ul, um), "answer_accuracy": graded_accuracy("unseen", utop1),
                             "answer_token_accuracy": answer_token_accuracy("unseen", utop1)}
        if self.data.n_choice:
            from sft_tilt.harness.general_choice import choice_accuracy

            enc, item_of_row, items = self.choice_set
            cl, _, cm = scores(enc)
            if cl is None:
                return None
            out["choice"] = choice_accuracy(cl, cm, items, item_of_row)
        if with_train_stats:
            tl, _, tm = scores(self.train[fmt])
            out["train_stats"] = probability_stats(tl, tm)
            out["train_sequence_nll"] = sequence_mean_nll(tl, tm).tolist()
            out["train_token_losses"] = (tl, tm)
        return out

    @functools.cached_property
    def choice_set(self):
        """``(encoded rows, item of each row, items)`` of the general multiple-choice items (``n_choice``)."""
        from sft_tilt.harness.general_choice import choice_items, encode_choice_set

        items = choice_items(self.data.n_choice, self.data.data_seed)
        # the rows are short (a question and a few words): a window of the longest, not of seq_len_general
        longest = max(len(self.tokenizer.encode_chat_example(item.prompt, choice)[0]) for item in items for choice in item.choices)
        enc, item_of_row = encode_choice_set(self.tokenizer, items, longest, self.pad_id)
        return enc, item_of_row, items

    def chance_levels(self) -> dict:
        """What guessing scores on each accuracy: a uniformly random next token is top-1 with probability 1/V;
        a uniformly random answer spells the reference with probability ~0; multiple choice: mean 1/#choices."""
        out = {"top1": 1.0 / self.config.vocab_size, "answer_accuracy": 0.0,
               "answer_token_accuracy": 1.0 / self.config.vocab_size}
        if self.data.n_choice:
            from sft_tilt.harness.general_choice import choice_accuracy

            enc, item_of_row, items = self.choice_set
            zeros = np.zeros((enc.n, enc.seq_len - 1))
            out["choice"] = choice_accuracy(zeros, enc.loss_mask[:, 1:].astype(np.float64), items, item_of_row)["chance"]
        return out

    def accuracy(self, params, fmt: str) -> dict:
        n = self.data.n_accuracy
        if n == 0:
            return {"accuracy": float("nan"), "n": 0, "records": []}
        max_new = self.data.accuracy_max_new_tokens_cot if fmt == "cot" else self.data.accuracy_max_new_tokens_label
        gradeable = [e for e in self.splits.heldout if np.isfinite(e.answer) or e.lower is not None][:n]  # not dates
        return greedy_accuracy(params, self.config, self.tokenizer, gradeable, max_new, SYSTEM_PROMPT)

    def base(self) -> dict:
        """Evaluation of the initial model in both formats (cached on disk)."""
        if self._base is None:
            material = {**self.key_material(), "what": "base_eval", "code": code_key(__name__)}

            def compute():
                out = {"chance": self.chance_levels()}
                for fmt in FORMATS:
                    ev = self.evaluate(self.params, fmt, with_train_stats=True)
                    ev["accuracy"] = self.accuracy(self.params, fmt)
                    out[fmt] = ev
                return out

            self._base = cached("harness_base", material, compute)
        return self._base


_SESSIONS: dict = {}


def get_session(model: str, tokenizer: str | None, data: DataConfig, progress: bool | None = None) -> Session:
    """The (in-memory memoised) session for a model file and data configuration; ``progress`` (if given) turns
    the progress bars of its one-off computations on or off."""
    key = content_key({"model": str(model), "tok": str(tokenizer), "data": data})
    if key not in _SESSIONS:
        _SESSIONS.clear()  # one model in memory at a time
        _SESSIONS[key] = Session(str(model), None if tokenizer is None else str(tokenizer), data)
    if progress is not None:
        _SESSIONS[key].progress = bool(progress)
    return _SESSIONS[key]
