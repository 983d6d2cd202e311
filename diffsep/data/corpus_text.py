"""Sentences for the TTS voices of a built corpus: a small seeded grammar of plain English
statements and questions (no text from elsewhere, so the corpus is free to ship and rebuild).

    sentences(rng, n) -> n sentences of 6–16 words, each a fresh draw from the grammar
"""
from __future__ import annotations

import numpy as np

NAMES = ("Anna", "Ben", "Clara", "David", "Ella", "Frank", "Grace", "Henry", "Iris", "Jack", "Kate",
         "Liam", "Maya", "Noah", "Olive", "Peter", "Rosa", "Sam", "Tara", "Victor", "Wendy", "Yusuf")
ADJECTIVES = ("small", "old", "bright", "quiet", "heavy", "green", "narrow", "warm", "broken", "empty",
              "wooden", "sharp", "yellow", "soft", "distant", "crowded", "clean", "tall", "cold", "round")
NOUNS = ("garden", "window", "bicycle", "letter", "basket", "river", "kitchen", "ladder", "station",
         "market", "candle", "bridge", "pocket", "engine", "blanket", "orchard", "hammer", "mountain",
         "library", "harbour", "teacher", "farmer", "doctor", "painter", "kettle", "carpet", "forest")
VERBS_PAST = ("found", "carried", "painted", "opened", "repaired", "noticed", "moved", "cleaned",
              "borrowed", "sold", "watched", "followed", "measured", "lifted", "hid", "described")
VERBS_BASE = ("find", "carry", "paint", "open", "repair", "notice", "move", "clean", "borrow", "sell",
              "watch", "follow", "measure", "lift", "hide", "describe")
PLACES = ("near the station", "behind the old mill", "at the end of the road", "on the north shore",
          "under the bridge", "by the open window", "in the back of the shop", "across the valley",
          "beside the school", "at the top of the hill", "in the crowded market")
TIMES = ("on Monday", "last winter", "before dinner", "early this morning", "after the storm",
         "every Sunday", "at midnight", "in the spring", "three days ago", "later that evening")
NUMBERS = ("two", "three", "four", "five", "seven", "nine", "twelve", "twenty", "forty", "a hundred")


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def sentence(rng: np.random.Generator) -> str:
    """One sentence drawn from the grammar."""
    p = lambda words: _pick(rng, words)  # noqa: E731
    kind = int(rng.integers(6))
    if kind == 0:
        s = f"{p(NAMES)} {p(VERBS_PAST)} the {p(ADJECTIVES)} {p(NOUNS)} {p(PLACES)} {p(TIMES)}."
    elif kind == 1:
        s = f"Why did {p(NAMES)} {p(VERBS_BASE)} the {p(NOUNS)} {p(TIMES)}?"
    elif kind == 2:
        s = (f"It took {p(NUMBERS)} hours to {p(VERBS_BASE)} a {p(ADJECTIVES)} {p(NOUNS)} "
             f"{p(PLACES)}.")
    elif kind == 3:
        s = f"The {p(NOUNS)} was {p(ADJECTIVES)}, so {p(NAMES)} {p(VERBS_PAST)} it {p(TIMES)}."
    elif kind == 4:
        s = f"Please {p(VERBS_BASE)} the {p(NOUNS)} and the {p(ADJECTIVES)} {p(NOUNS)} {p(PLACES)}."
    else:
        s = (f"{p(NAMES)} and {p(NAMES)} {p(VERBS_PAST)} {p(NUMBERS)} {p(ADJECTIVES)} "
             f"{p(NOUNS)}s {p(TIMES)}.")
    return s


def sentences(rng: np.random.Generator, n: int, per_utterance: tuple[int, int] = (1, 2)) -> list[str]:
    """``n`` utterance texts, each of ``per_utterance`` (min, max) sentences."""
    lo, hi = per_utterance
    return [" ".join(sentence(rng) for _ in range(int(rng.integers(lo, hi + 1)))) for _ in range(n)]
