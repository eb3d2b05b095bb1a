"""General ability as multiple-choice accuracy: log-likelihood scoring of offline, generated questions.

Every generated item is a short question with 4 answer choices, built deterministically from hand-written tables
in this module (no download): :data:`FAMILIES` lists its kinds of knowledge. Each choice is one chat example,
the question as the user turn and the choice as the assistant response (:func:`encode_choice_set`); the
loss mask covers the choice's tokens and the closing ``<|im_end|>`` (what ``encode_chat_set`` scores). The
score of choice ``c`` of item ``i`` and the prediction are

    s_ic = sum_{t in response(i, c)} log q_theta(x_t | x_<t) = -sum_t m_t l_t
    pred_i = argmax_c s_ic     (ties: the lowest index c)
    accuracy = (1 / N) sum_i [pred_i == answer_i],   chance = (1 / N) sum_i 1 / C_i

which is lm-evaluation-harness's ``acc`` (summed, not length-normalised, log-likelihood of the continuation;
counting ``<|im_end|>`` also asks that the answer end there).

Each family asks one kind of thing a small instruct model knows: a country's capital, an adjective's
opposite, the weekday or month after another, a noun's plural, a one-digit sum, a thing's colour, a young
animal's name. Its choices are one sentence with the answer word swapped ("The capital of France is Paris." /
"... is Rome."), so they have similar lengths and differ only where the knowledge is; wrong answers come from
the same table (for sums: the numbers within 2 of the right one). A bare answer word as the whole response
scored far worse (0.50-0.54 against 0.80-0.82 as sentences, 160 items of an earlier family set): it is not how
the model answers, so every choice was improbable and the comparison noisy.

Measured with SmolLM2-135M-Instruct (float32) on ``choice_items(48, seed=0)``: accuracy 0.81 against chance
0.25 (capital 1.0, antonym 0.83, next_day 0.67, next_month 0.5, plural 1.0, addition 0.83, colour 0.83,
young_animal 0.83; 6 items each); seeds 1-4 gave 0.81-0.85, and 240 items scored 0.83, the weakest families
next_month and colour at 0.63. A fine-tuned model's drop in this accuracy is a skill the base model had and
lost. A "which of two animals is larger" family was measured at chance (0.5-0.6 of 2 choices) and left out.

With SmolLM2's chat template (its default system turn included) every row of every family fits in 56 tokens.

:data:`CHOICE_SOURCES` names where a session's items come from (``DataConfig.choice_source``): ``"generated"``, the
families here, or ``"commonsense_qa"``, the validation questions of the public CommonsenseQA benchmark read from an
installed package (:mod:`sft_tilt.harness.commonsense_qa`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sft_tilt.harness.choice_item import ChoiceItem
from sft_tilt.harness.encoding import EncodedSet, encode_chat_set

__all__ = ["ChoiceItem", "ChoiceFamily", "FAMILIES", "CHOICE_SOURCES", "choice_items", "encode_choice_set",
           "choice_accuracy"]

#: The sources of multiple-choice items; the first is the default (the generated families, as every committed run).
CHOICE_SOURCES = ("generated", "commonsense_qa")


@dataclass(frozen=True)
class ChoiceFamily:
    """A kind of question: ``questions`` holds ``(prompt, right answer, wrong answers to draw from)``; an item
    takes ``n_choices - 1`` of the wrong answers."""

    name: str
    questions: tuple[tuple[str, str, tuple[str, ...]], ...]
    n_choices: int

    def __post_init__(self):
        if self.n_choices < 2:
            raise ValueError(f"n_choices: must be >= 2, got {self.n_choices}")
        if not self.questions:
            raise ValueError(f"questions: family {self.name!r} has none")
        for prompt, answer, wrong in self.questions:
            if answer in wrong or len(set(wrong)) < self.n_choices - 1:
                raise ValueError(f"questions: {prompt!r} needs {self.n_choices - 1} distinct wrong answers, got {wrong!r}")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lookup(name: str, question: str, response: str, table: tuple[tuple[str, str], ...], n_choices: int = 4) -> ChoiceFamily:
    """Questions ``question.format(key)``; each choice is the sentence ``response.format(key=key, answer=a)`` with
    the row's own answer or another row's, so the choices of a question differ only in the answer word."""
    answers = tuple(dict.fromkeys(a for _, a in table))
    questions = []
    for key, answer in table:
        right = _sentence(response.format(key=key, answer=answer))
        wrong = tuple(_sentence(response.format(key=key, answer=b)) for b in answers if b != answer)
        questions.append((question.format(key), right, wrong))
    return ChoiceFamily(name, tuple(questions), n_choices)


def _successors(cycle: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``(x, the element after x)`` around a cycle (the last element is followed by the first)."""
    return tuple((x, cycle[(i + 1) % len(cycle)]) for i, x in enumerate(cycle))


def _addition(n_choices: int = 4) -> ChoiceFamily:
    """``a + b = s`` for one-digit ``a, b >= 1``; the wrong sums lie within 2 of ``s`` (near misses: knowing only the
    answer's size or its number of digits does not tell them apart)."""
    questions = []
    for a in range(1, 10):
        for b in range(1, 10):
            s = a + b
            questions.append((f"What is {a} + {b}?", f"{a} + {b} = {s}.",
                              tuple(f"{a} + {b} = {x}." for x in range(s - 2, s + 3) if x != s)))
    return ChoiceFamily("addition", tuple(questions), n_choices)


CAPITALS = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
    ("China", "Beijing"), ("Russia", "Moscow"), ("the United Kingdom", "London"), ("Egypt", "Cairo"),
    ("Greece", "Athens"), ("Portugal", "Lisbon"), ("Ireland", "Dublin"), ("Austria", "Vienna"), ("Norway", "Oslo"),
    ("Sweden", "Stockholm"), ("Poland", "Warsaw"), ("Hungary", "Budapest"), ("Thailand", "Bangkok"),
    ("South Korea", "Seoul"), ("Cuba", "Havana"), ("Peru", "Lima"), ("Kenya", "Nairobi"),
)

ANTONYMS = (
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("tall", "short"), ("full", "empty"),
    ("rich", "poor"), ("strong", "weak"), ("wet", "dry"), ("early", "late"), ("loud", "quiet"), ("clean", "dirty"),
    ("thick", "thin"), ("deep", "shallow"), ("cheap", "expensive"), ("good", "bad"), ("easy", "difficult"),
    ("young", "old"), ("heavy", "light"), ("open", "closed"), ("near", "far"), ("safe", "dangerous"),
    ("wide", "narrow"), ("true", "false"),
)

PLURALS = (
    ("child", "children"), ("mouse", "mice"), ("foot", "feet"), ("tooth", "teeth"), ("man", "men"),
    ("woman", "women"), ("goose", "geese"), ("person", "people"), ("leaf", "leaves"), ("knife", "knives"),
    ("wolf", "wolves"), ("box", "boxes"), ("city", "cities"), ("baby", "babies"), ("bus", "buses"),
    ("dog", "dogs"), ("cat", "cats"), ("house", "houses"), ("book", "books"), ("car", "cars"),
)

COLOURS = (
    ("grass", "green"), ("the sky on a clear day", "blue"), ("snow", "white"), ("a ripe banana", "yellow"),
    ("coal", "black"), ("blood", "red"), ("a ripe tomato", "red"), ("a lemon", "yellow"), ("milk", "white"),
    ("a carrot", "orange"), ("chocolate", "brown"), ("a pumpkin", "orange"), ("the ocean", "blue"),
    ("a lime", "green"), ("a crow", "black"), ("a strawberry", "red"),
)

YOUNG_ANIMALS = (
    ("cat", "kitten"), ("dog", "puppy"), ("cow", "calf"), ("sheep", "lamb"), ("horse", "foal"), ("duck", "duckling"),
    ("frog", "tadpole"), ("bear", "cub"), ("pig", "piglet"), ("goat", "kid"), ("kangaroo", "joey"), ("goose", "gosling"),
)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")

FAMILIES: tuple[ChoiceFamily, ...] = (
    _lookup("capital", "What is the capital of {}?", "The capital of {key} is {answer}.", CAPITALS),
    _lookup("antonym", "What is the opposite of \"{}\"?", "The opposite of \"{key}\" is \"{answer}\".", ANTONYMS),
    _lookup("next_day", "What day comes after {}?", "The day after {key} is {answer}.", _successors(WEEKDAYS)),
    _lookup("next_month", "What month comes after {}?", "The month after {key} is {answer}.", _successors(MONTHS)),
    _lookup("plural", "What is the plural of \"{}\"?", "The plural of \"{key}\" is \"{answer}\".", PLURALS),
    _addition(),
    _lookup("colour", "What colour is {}?", "{key} is {answer}.", COLOURS),
    _lookup("young_animal", "What is a baby {} called?", "A baby {key} is called a {answer}.", YOUNG_ANIMALS),
)


def choice_items(n: int, seed: int = 0, source: str = CHOICE_SOURCES[0]) -> list[ChoiceItem]:
    """``n`` items of ``source`` (one of :data:`CHOICE_SOURCES`), deterministic in ``(n, seed)``.

    ``"generated"``: cycling over :data:`FAMILIES` (item ``k`` from family ``k mod F``). Each family walks its
    questions in an order shuffled by ``seed`` (no question repeats before all were asked), draws the wrong answers
    and shuffles the answer position with its own generator, so the first ``n`` items do not depend on how many
    follow. ``"commonsense_qa"``: :func:`sft_tilt.harness.commonsense_qa.commonsense_qa_items`.
    """
    if source not in CHOICE_SOURCES:
        raise ValueError(f"source: must be one of {CHOICE_SOURCES}, got {source!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: must be an int >= 1, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: must be an int >= 0, got {seed!r}")
    if source == "commonsense_qa":
        from sft_tilt.harness.commonsense_qa import commonsense_qa_items

        return commonsense_qa_items(n, seed)
    rngs = [np.random.default_rng([seed, f]) for f in range(len(FAMILIES))]
    orders = [rng.permutation(len(family.questions)) for rng, family in zip(rngs, FAMILIES)]
    items = []
    for k in range(n):
        f, lap = k % len(FAMILIES), k // len(FAMILIES)  # lap: how many times the cycle went round
        family, rng = FAMILIES[f], rngs[f]
        prompt, answer, wrong = family.questions[orders[f][lap % len(orders[f])]]
        picked = [wrong[j] for j in rng.choice(len(wrong), size=family.n_choices - 1, replace=False)]
        position = int(rng.integers(family.n_choices))
        choices = tuple(picked[:position] + [answer] + picked[position:])
        items.append(ChoiceItem(family.name, prompt, choices, position))
    return items


def encode_choice_set(tokenizer, items, seq_len: int, pad_id: int = 0) -> tuple[EncodedSet, np.ndarray]:
    """One chat window per (item, choice), items in order and choices in order within an item.

    Returns the :class:`EncodedSet` (loss mask on each choice's tokens and its ``<|im_end|>``, as
    ``encode_chat_set``) and ``item_of_row`` ``[rows]`` (int64): the index in ``items`` of each row.
    Raises ValueError naming ``seq_len`` when a row does not fit (a truncated choice would be scored wrongly).
    """
    items = list(items)
    if not items:
        raise ValueError("items: empty")
    for i, item in enumerate(items):
        if not isinstance(item, ChoiceItem):
            raise ValueError(f"items[{i}]: expected a ChoiceItem, got {type(item).__name__}")
    pairs = [(item.prompt, choice) for item in items for choice in item.choices]
    item_of_row = np.repeat(np.arange(len(items)), [len(item.choices) for item in items])
    return encode_chat_set(tokenizer, pairs, seq_len, pad_id), item_of_row


def choice_accuracy(losses, mask, items, item_of_row) -> dict:
    """Multiple-choice accuracy from per-token losses: lm-evaluation-harness's ``acc``.

    ``losses`` and ``mask`` ``[rows, T-1]`` are what ``sft_tilt.harness.measure.set_token_losses`` returns for the
    set of ``encode_choice_set(tokenizer, items, ...)`` (any float dtype; the sums are taken in float64), and
    ``item_of_row`` ``[rows]`` its map from rows to items; the rows of item ``i`` hold its choices in order.
    The score of choice ``c`` is its tokens' log-likelihood and the prediction the best score,

        s_c = -sum_t m_ct l_ct,   pred = argmax_c s_c   (ties: the lowest index c),

    not normalised by length (``acc``, not ``acc_norm``).

    Returns ``{"accuracy": mean of [pred == answer], "n": number of items, "chance": mean of 1 / len(choices),
    "per_family": {family: accuracy over its items}, "correct": [1 if item i is answered right, else 0]}``
    (families in order of first appearance).
    """
    items = list(items)
    if not items:
        raise ValueError("items: empty")
    losses = np.asarray(losses, dtype=np.float64)
    mask = np.asarray(mask, dtype=np.float64)
    item_of_row = np.asarray(item_of_row)
    if losses.ndim != 2:
        raise ValueError(f"losses: need a [rows, T-1] array, got shape {losses.shape}")
    if mask.shape != losses.shape:
        raise ValueError(f"mask: need the shape of losses {losses.shape}, got {mask.shape}")
    if item_of_row.shape != (losses.shape[0],) or not np.issubdtype(item_of_row.dtype, np.integer):
        raise ValueError(f"item_of_row: need {losses.shape[0]} integers (one per row of losses), got "
                         f"{item_of_row.dtype} of shape {item_of_row.shape}")
    if np.any(mask.sum(axis=1) <= 0):
        raise ValueError("mask: a row has no scored token")
    if not np.all(np.isfinite(losses[mask > 0])):
        raise ValueError("losses: a scored loss is not finite")
    if np.any((item_of_row < 0) | (item_of_row >= len(items))):
        raise ValueError(f"item_of_row: every entry must index items (0..{len(items) - 1})")
    scores = -(losses * mask).sum(axis=1)
    correct = np.zeros(len(items), dtype=bool)
    for i, item in enumerate(items):
        rows = np.flatnonzero(item_of_row == i)
        if len(rows) != len(item.choices):
            raise ValueError(f"item_of_row: item {i} has {len(item.choices)} choices but {len(rows)} rows")
        correct[i] = int(np.argmax(scores[rows])) == item.answer  # np.argmax returns the first of tied maxima
    families = np.asarray([item.family for item in items])
    return {
        "accuracy": float(correct.mean()),
        "n": len(items),
        "chance": float(np.mean([1.0 / len(item.choices) for item in items])),
        "per_family": {f: float(correct[families == f].mean()) for f in dict.fromkeys(families.tolist())},
        "correct": correct.astype(int).tolist(),
    }
