"""A harness session: one model, one data configuration, their encoded sets and base-model evaluation.

Everything every run of a sweep shares is built once here: the loaded model and tokenizer, the domain
splits in both formats, the three general sets, and the initial model's evaluation (domain and general
losses, target-token statistics, FLOW's per-sequence losses, greedy accuracy), which is cached on disk
keyed by the model file's fingerprint, the data configuration and the code key of this module (its source
and every repository module it imports).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from sft_tilt.harness.data_config import DataConfig
from sft_tilt.harness.data_files import read_domain_file, read_general_file, split_examples
from sft_tilt.harness.encoding import EncodedSet, encode_answer_mask, encode_chat_set, encode_text_set
from sft_tilt.harness.general_sets import INSTRUCTIONS, code_texts, docs_texts
from sft_tilt.harness.measure import (answer_accuracy, greedy_accuracy, mean_nll, probability_stats, row_measures,
                                      sequence_mean_nll, set_token_scores, top1_rate)
from sft_tilt.harness.medcalc import FORMATS, SYSTEM_PROMPT, answer_start
from sft_tilt.harness.medcalc_bench import make_splits
from sft_tilt.harness.stored_runs import model_fingerprint, model_sha256
from sft_tilt.store import cached, code_key, content_key

__all__ = ["DataConfig", "Session", "UnusableInput", "get_session", "model_fingerprint", "model_sha256",
           "longest_token_bytes"]


class UnusableInput(ValueError):
    """A model or data file a session cannot use, found before anything is computed with it: ``argument`` names
    what to change (``"model"``, ``"tokenizer"``, ``"domain_data"``, ``"general_data"``), the message the file and
    the problem."""

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument


def _load_model(model: str, tokenizer: str | None):
    """``(config, params, tokenizer)``; :class:`UnusableInput` naming the file when either cannot be read, or when the
    model's vocabulary is smaller than the tokenizer's (ids past the embedding would have no row)."""
    from sft_tilt.lm.tokenizer import Tokenizer

    path = Path(model)
    try:
        if path.is_dir():
            from sft_tilt.lm.hf_io import load_hf_checkpoint

            config, params = load_hf_checkpoint(path)
        else:
            from sft_tilt.lm.gguf_io import load_gguf

            config, params = load_gguf(path)
    except (OSError, ValueError) as err:  # missing, a folder without config.json, a damaged or unsupported file
        raise UnusableInput("model", f"model: {err}") from err
    source = tokenizer if tokenizer is not None else path
    try:
        tok = Tokenizer.from_hf(path) if tokenizer is None and path.is_dir() else _tokenizer_from(source)
    except (OSError, ValueError) as err:
        raise UnusableInput("model" if tokenizer is None else "tokenizer", f"tokenizer: {err}") from err
    if tok.vocab_size > config.vocab_size:
        raise UnusableInput("model", f"model: {model}: a vocabulary of {config.vocab_size} tokens, fewer than the "
                                     f"tokenizer's {tok.vocab_size} ({source}): the ids past it have no embedding")
    params = {k: v for k, v in params.items()}
    import jax

    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), params)
    return config, params, tok


def _too_long(path: str, example, fmt: str, tokens: int, window: int, bound: bool = False) -> str:
    return (f"domain_data: {path}: line {dict(example.inputs).get('line')}: the {'chain-of-thought' if fmt == 'cot' else 'label'} "
            f"example needs {'at least ' if bound else ''}{tokens} tokens, more than its window seq_len_{fmt}={window}")


def longest_token_bytes(tokenizer) -> int:
    """An upper bound on the bytes of text one token covers: the longest vocabulary entry in UTF-8 bytes (a
    byte-level entry spells each byte with one character of one or more bytes, so its UTF-8 length is at least the
    bytes it covers), added tokens included."""
    backend = tokenizer.backend
    entries = list(backend.get_vocab(with_added_tokens=False)) + [t.content for t in backend.get_added_tokens_decoder().values()]
    return max(1, max((len(t.encode("utf-8", "surrogatepass")) for t in entries), default=1))


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
        windows = {name: getattr(self.data, name) for name in ("seq_len_cot", "seq_len_label", "seq_len_general")}
        longest = max(windows, key=windows.get)
        if windows[longest] > self.config.max_seq_len:
            raise UnusableInput("model", f"model: {self.model}: a context of {self.config.max_seq_len} tokens, shorter "
                                         f"than the data configuration's window {longest}={windows[longest]}")
        self.fingerprint = model_fingerprint(self.model)
        if self.data.domain_data is not None:
            try:
                self.splits = split_examples(read_domain_file(self.data.domain_data), self.data.n_train,
                                             self.data.n_heldout, self.data.data_seed)
            except ValueError as err:
                raise UnusableInput("domain_data", f"{err}" if str(err).startswith("domain_data:")
                                    else f"domain_data: {self.data.domain_data.path}: {err}") from err
            self._check_domain_lengths()
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
            self.train[fmt] = self._domain_encoded(self.splits.train, fmt, n, lambda: encode_chat_set(
                self.tokenizer, [(e.prompt, e.response(fmt)) for e in self.splits.train], n, self.pad_id, SYSTEM_PROMPT))
            self.heldout[fmt] = self._domain_encoded(self.splits.heldout, fmt, n, lambda: self._encode_graded(
                "heldout", fmt, self.splits.heldout, n))
            if self.splits.unseen:  # other calculators' explanations may be longer: the window fits the longest
                longest = max(len(self.tokenizer.encode_chat_example(e.prompt, e.response(fmt), system=SYSTEM_PROMPT)[0])
                              for e in self.splits.unseen)
                self.unseen[fmt] = self._encode_graded("unseen", fmt, self.splits.unseen, max(n, longest))
        self.real: dict[str, dict[str, EncodedSet]] = {}  # "real" / "real_unseen" -> fmt -> encoded rows
        self.real_rows: dict[str, list] = {}
        if self.data.real_data is not None:
            self._encode_real_rows()
        self._general: dict[str, EncodedSet] | None = None
        self._general_data = self._encode_general_data()
        self._base: dict | None = None
        self.progress = True  # progress bars of the session's own one-off computations (get_session sets it)

    def _check_domain_lengths(self) -> None:
        """Refuse a domain file's row that cannot fit its window before tokenizing it: a token covers at most
        :func:`longest_token_bytes` bytes of text, so a row of ``b`` bytes needs at least ``b / that`` tokens (a row of
        megabytes is refused at once instead of after minutes of tokenizing)."""
        per_token = longest_token_bytes(self.tokenizer)
        normalizer = self.tokenizer.backend.normalizer
        for e in self.splits.train + self.splits.heldout:
            for fmt in FORMATS:
                texts = (e.prompt, e.response(fmt))
                if normalizer is not None:  # the bytes the tokens cover are those of the normalised text
                    texts = tuple(normalizer.normalize_str(t) for t in texts)
                at_least = -(-sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) // per_token)
                if at_least > self.data.seq_len(fmt):
                    raise UnusableInput("domain_data", _too_long(self.data.domain_data.path, e, fmt, at_least,
                                                                 self.data.seq_len(fmt), bound=True))

    def _domain_encoded(self, examples, fmt: str, seq_len: int, encode):
        """``encode()``; for a domain file, an error names the file and the row (a row too long for the window, or
        text the tokenizer cannot encode), found by encoding the rows one by one."""
        try:
            return encode()
        except ValueError as err:
            if self.data.domain_data is None:
                raise
            path = self.data.domain_data.path
            for e in examples:
                try:
                    ids, _ = self.tokenizer.encode_chat_example(e.prompt, e.response(fmt), system=SYSTEM_PROMPT)
                except ValueError as row_err:
                    raise UnusableInput("domain_data", f"domain_data: {path}: line {dict(e.inputs).get('line')}: "
                                                       f"{row_err}") from err
                if len(ids) > seq_len:
                    raise UnusableInput("domain_data", _too_long(path, e, fmt, len(ids), seq_len)) from err
            raise UnusableInput("domain_data", f"domain_data: {path}: {err}") from err

    def _encode_graded(self, split: str, fmt: str, examples, seq_len: int) -> EncodedSet:
        pairs = [(e.prompt, e.response(fmt)) for e in examples]
        self.answer_masks[split, fmt] = encode_answer_mask(self.tokenizer, pairs, [answer_start(r) for _, r in pairs],
                                                           seq_len, SYSTEM_PROMPT)
        return encode_chat_set(self.tokenizer, pairs, seq_len, self.pad_id, SYSTEM_PROMPT)

    def _encode_real_rows(self) -> None:
        """The real MedCalc-Bench rows (``real_data``, ``n_real`` per calculator) of the trained calculators
        (set ``"real"``) and of the unseen ones (``"real_unseen"``), each chosen among the rows whose
        chain-of-thought example fits ``seq_len_real`` tokens (:func:`sft_tilt.harness.medcalc_bench_test.real_rows`)."""
        from sft_tilt.harness.medcalc_bench_test import missing_test_set_message, real_calculator_groups, real_rows

        path = self.data.real_data.path
        if not Path(path).is_file():
            raise UnusableInput("real_data", missing_test_set_message(path))
        try:
            examples = read_domain_file(self.data.real_data, "real_data")
        except ValueError as err:
            raise UnusableInput("real_data", f"{err}") from err
        window = self.data.seq_len_real

        def fits(example) -> bool:
            return len(self.tokenizer.encode_chat_example(example.prompt, example.response("cot"),
                                                          system=SYSTEM_PROMPT)[0]) <= window

        for split, calculators in real_calculator_groups(self.data).items():
            try:
                rows = real_rows(examples, calculators, self.data.n_real, fits)
            except ValueError as err:
                raise UnusableInput("n_real", f"{err}") from err
            self.real_rows[split] = rows
            self.real[split] = {fmt: self._encode_graded(split, fmt, rows, window) for fmt in FORMATS}

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
            if self._general_data is not None:
                self._general["data"] = self._general_data
        return self._general

    def _encode_general_data(self) -> EncodedSet | None:
        """The general set "data" of a ``general_data`` file, encoded when the session is built so that a row the
        tokenizer cannot encode, or a pair longer than the model's context, is refused before anything is computed."""
        if self.data.general_data is None:
            return None
        path, n = self.data.general_data.path, self.data.seq_len_general
        try:
            texts, pairs = read_general_file(self.data.general_data)
            if texts:
                return encode_text_set(self.tokenizer, texts, n, self.pad_id)
            longest = max(len(self.tokenizer.encode_chat_example(p, r)[0]) for p, r in pairs)
        except ValueError as err:
            raise UnusableInput("general_data", f"{err}" if str(err).startswith("general_data:")
                                else f"general_data: {path}: {err}") from err
        if longest > self.config.max_seq_len:
            raise UnusableInput("general_data", f"general_data: {path}: its longest prompt/response pair needs {longest} "
                                                f"tokens, more than the model's context of {self.config.max_seq_len}")
        return encode_chat_set(self.tokenizer, pairs, max(n, longest), self.pad_id)

    # -- evaluation ----------------------------------------------------------------------------------------

    def evaluate(self, params, fmt: str, with_train_stats: bool = False, finite_only: bool = False,
                 engine: str = "reference", wide: bool = True) -> dict | None:
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
        Without ``wide``, the costly sets (multiple choice, real MedCalc-Bench notes) are left out.
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
        items = {"domain": row_measures(dl, dtop1, dm, self.answer_masks["heldout", fmt]), "general": {}}
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
            items["general"][name] = row_measures(gl, gtop1, gm)
        graded = [("unseen", self.unseen[fmt])] if fmt in self.unseen else []
        graded += [(split, sets[fmt]) for split, sets in self.real.items() if wide]
        for split, enc in graded:  # problems scored beside the held-out ones: unseen calculators, real notes
            sl, stop1, sm = scores(enc)
            if sl is None:
                return None
            out[split] = {"loss": mean_nll(sl, sm), "answer_accuracy": graded_accuracy(split, stop1),
                          "answer_token_accuracy": answer_token_accuracy(split, stop1), "top1": top1_rate(stop1, sm)}
            items[split] = row_measures(sl, stop1, sm, self.answer_masks[split, fmt])
        if self.data.n_choice and wide:
            from sft_tilt.harness.general_choice import choice_accuracy

            enc, item_of_row, choice_items_ = self.choice_set
            cl, _, cm = scores(enc)
            if cl is None:
                return None
            out["choice"] = choice_accuracy(cl, cm, choice_items_, item_of_row)
            items["choice"] = {"correct": out["choice"].pop("correct")}
        out["items"] = items
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

        items = choice_items(self.data.n_choice, self.data.data_seed, self.data.choice_source)
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
