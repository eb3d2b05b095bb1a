"""The data a harness session builds: sizes of the domain splits, sequence lengths, the general sets, and the user's
data files in place of the generated ones.

A configuration only: building the sets (tokenising, encoding) is the session's (:mod:`sft_tilt.harness.session`), so a
reader of stored runs can name a run's data without loading a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sft_tilt.harness.data_files import DataFile
from sft_tilt.harness.general_choice import CHOICE_SOURCES
from sft_tilt.harness.general_sets import INSTRUCTIONS
from sft_tilt.harness.medcalc import FORMATS
from sft_tilt.harness.medcalc_bench import CALCULATORS
from sft_tilt.store import OMIT_AT_DEFAULT, key_field_values

__all__ = ["DataConfig"]



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
    # Fields added after the first committed runs are marked OMIT_AT_DEFAULT: at their defaults they are in no key,
    # so the runs and records computed before them keep theirs.
    # where the n_choice items come from (general_choice.CHOICE_SOURCES)
    choice_source: str = field(default=CHOICE_SOURCES[0], metadata={OMIT_AT_DEFAULT: True})
    # a MedCalc-Bench CSV: its rows of the trained and unseen calculators, scored (medcalc_bench_test)
    real_data: DataFile | None = field(default=None, metadata={OMIT_AT_DEFAULT: True})
    # rows per calculator scored from real_data (real_rows: the first that fit seq_len_real)
    n_real: int = field(default=0, metadata={OMIT_AT_DEFAULT: True})
    # the longest real row (note, question and chain-of-thought response) scored, in tokens
    seq_len_real: int = field(default=1024, metadata={OMIT_AT_DEFAULT: True})

    def __post_init__(self):
        for name in ("n_unseen", "n_choice", "n_real"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name}: must be a non-negative int, got {v!r}")
        if self.choice_source not in CHOICE_SOURCES:
            raise ValueError(f"choice_source: must be one of {CHOICE_SOURCES}, got {self.choice_source!r}")
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
        """The configuration as a dict for run keys and records: the fields :func:`sft_tilt.store.key_field_values`
        keeps (every field, less those added later while they hold their defaults)."""
        d = asdict(self)
        return {name: d[name] for name in key_field_values(self)}

    def seq_len(self, fmt: str) -> int:
        if fmt not in FORMATS:
            raise ValueError(f"fmt: must be one of {FORMATS}, got {fmt!r}")
        return self.seq_len_cot if fmt == "cot" else self.seq_len_label
