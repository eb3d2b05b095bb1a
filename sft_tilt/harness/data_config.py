"""The data a harness session builds: sizes of the domain splits, sequence lengths, the general sets, and the user's
data files in place of the generated ones.

A configuration only: building the sets (tokenising, encoding) is the session's (:mod:`sft_tilt.harness.session`), so a
reader of stored runs can name a run's data without loading a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sft_tilt.harness.data_files import DataFile
from sft_tilt.harness.general_sets import INSTRUCTIONS
from sft_tilt.harness.medcalc import FORMATS
from sft_tilt.harness.medcalc_bench import CALCULATORS

__all__ = ["DataConfig"]

#: Fields added after the first committed runs, with the default that leaves them out of a description.
_LATER_FIELDS = {"real_data": None, "n_real": 0, "seq_len_real": 1024}


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
    # Fields below came after the first committed runs: left at their defaults they stay out of describe(), so
    # the runs computed before them keep their keys.
    real_data: DataFile | None = None  # a MedCalc-Bench CSV: its rows of the trained and unseen calculators, scored
    n_real: int = 0  # rows per calculator scored from real_data (real_rows: the first that fit seq_len_real)
    seq_len_real: int = 1024  # the longest real row (note, question and response) scored, in tokens

    def __post_init__(self):
        for name in ("n_unseen", "n_choice", "n_real"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name}: must be a non-negative int, got {v!r}")
        if self.n_unseen and self.domain_data is not None:
            raise ValueError("n_unseen: unseen calculators exist only in the generated domain, not with domain_data")
        for name in ("n_train", "n_heldout", "seq_len_cot", "seq_len_label", "seq_len_general", "n_self",
                     "self_max_new_tokens", "n_docs", "n_code", "eval_batch", "accuracy_max_new_tokens_cot",
                     "accuracy_max_new_tokens_label", "seq_len_real"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: must be a positive int, got {v!r}")
        if not isinstance(self.n_accuracy, int) or self.n_accuracy < 0 or self.n_accuracy > self.n_heldout:
            raise ValueError(f"n_accuracy: must be in [0, n_heldout={self.n_heldout}], got {self.n_accuracy!r}")
        if self.n_self > len(INSTRUCTIONS):
            raise ValueError(f"n_self: at most {len(INSTRUCTIONS)} instructions exist, got {self.n_self}")
        for name in ("domain_data", "general_data", "real_data"):
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
        if (self.real_data is None) != (self.n_real == 0):
            raise ValueError(f"n_real: real rows are scored with a real_data file and n_real >= 1, or neither; got "
                             f"n_real={self.n_real} and real_data={self.real_data}")
        if self.real_data is not None and self.domain_data is not None:
            raise ValueError("real_data: real rows are matched to the generated domain's calculators, not to domain_data")

    def describe(self) -> dict:
        """The configuration as a dict for run keys and records: every field, except those added after the first
        committed runs while they hold their defaults (:data:`_LATER_FIELDS`), so the earlier runs keep their keys."""
        d = asdict(self)
        for name, default in _LATER_FIELDS.items():
            if getattr(self, name) == default:
                d.pop(name)
        return d

    def canonical_fields(self) -> dict:
        """The fields a content key holds (:func:`sft_tilt.store.canonical`): as :meth:`describe` leaves them."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__
                if not (name in _LATER_FIELDS and getattr(self, name) == _LATER_FIELDS[name])}

    def seq_len(self, fmt: str) -> int:
        if fmt not in FORMATS:
            raise ValueError(f"fmt: must be one of {FORMATS}, got {fmt!r}")
        return self.seq_len_cot if fmt == "cot" else self.seq_len_label
