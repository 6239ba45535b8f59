"""The consent phrase's code words, and hearing them in a recording offline.

A voice's owner reads a phrase that ends in four code words drawn at random for that
enrolment ("... My code words are: falcon, lantern, mosaic, tangerine."). Enrolment checks
that the consent recording contains each of them, with pocketsphinx's keyword spotting
(its English acoustic model and the CMU pronouncing dictionary ship inside its wheel).
Only the code words are spotted: "kinema" and voice names are not in the dictionary,
so the sentence as a whole is never aligned.

The list. CODE_WORDS are the words of KWS_THRESHOLDS, chosen from a pool of common nouns
by these rules: in the CMU dictionary with exactly one pronunciation of 5 to 12 phonemes,
no two within 2 phonemes of each other (Levenshtein distance between their
pronunciations ≥ MIN_PHONEME_DISTANCE: `prune`), and spotted reliably, as measured below.
`draw` picks four distinct ones at random, never the voice's own name.

Thresholds. A keyword spotter reports a word where the word's phones explain the audio
nearly as well as the best free sequence of phones does; the threshold is how far behind
(a log10 likelihood ratio) the word may be. One threshold cannot serve every word: a long
word with rare phones falls far behind even when it is said, and a short word with common
phones catches up somewhere in almost any sentence (measured: "teacup" scores 0 or more
in 1 of 100 recordings that do not contain it, "hippopotamus" read aloud scored as low
as -50: no one threshold serves both). So each word has its own, set
on eSpeak NG voices that the acceptance measurement does not use
(consent_measure.calibration_scores, choose_words): every candidate read 24 times in
phrases, and scored in every recording where it was not read (other code words, other
texts). Its threshold is 1 above the 99th percentile of its scores where it was not read,
so a code word that was not said is heard about 1 time in 100 or less (what refuses a
phrase with a swapped word); a word stays on the list only if every one of its readings
scored at least 1 above its threshold (what accepts the phrase read as issued).

Audio is mixed to mono, resampled to 16 kHz, peak-normalised, padded with silence and
given a little fixed-seed dither (-48 dB): synthetic and very clean recordings hold
stretches of digital silence that upset the decoder's noise and cepstral-mean estimates;
the dither makes them behave like any real recording, and a real recording's own noise
floor is above it.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from kinema.io import Audio
from kinema.voice.features import VoiceError, mono16k

__all__ = [
    "CODE_WORDS",
    "KWS_THRESHOLDS",
    "MIN_PHONEME_DISTANCE",
    "WORDS_PER_PHRASE",
    "check_code_words",
    "draw",
    "phoneme_distance",
    "phrase_code_words",
    "phrase_text",
    "pronunciation",
    "prune",
    "spot",
]

WORDS_PER_PHRASE = 4
MIN_PHONEME_DISTANCE = 3  # "no two within 2 phonemes of each other"
PHONEMES_RANGE = (5, 12)
SPOT_RATE = 16000
DITHER = 0.002  # of full scale, on audio peak-normalised to 0.5: about -48 dB
PAD_SECONDS = 0.3
BEAM = 1e-80
# kws reports a detection's score as its log likelihood ratio minus this constant, in
# log-base-1.0001 units shifted right by 10 bits (pocketsphinx kws_search.c, KWS_MAX)
_KWS_MAX = 1500
_LOG10_PER_UNIT = 1024 * math.log10(1.0001)

KWS_THRESHOLDS: dict[str, float] = {
    "amphibian": -19.2,
    "astronomy": -40.0,
    "automobile": -31.4,
    "basement": -21.0,
    "bicycle": -19.6,
    "briefcase": -16.0,
    "broomstick": -29.8,
    "bumblebee": -25.4,
    "cactus": -20.3,
    "calculator": -42.6,
    "cathedral": -9.0,
    "chameleon": -9.6,
    "champion": -26.3,
    "cheesecake": -33.0,
    "chimpanzee": -40.2,
    "chipmunk": -29.4,
    "chopsticks": -39.1,
    "colosseum": -35.2,
    "conductor": -22.7,
    "constable": -37.3,
    "cucumber": -25.5,
    "gazebo": -17.4,
    "gingerbread": -69.7,
    "glockenspiel": -54.5,
    "gymnasium": -38.1,
    "hippopotamus": -59.2,
    "illustration": -67.7,
    "junkyard": -46.6,
    "kilogram": -29.4,
    "kingfisher": -31.7,
    "mahogany": -36.8,
    "mosquito": -19.1,
    "mushroom": -24.2,
    "mustache": -21.7,
    "ornament": -28.1,
    "paintbrush": -42.8,
    "pizza": -0.6,
    "policeman": -28.3,
    "pumpernickel": -35.6,
    "rattlesnake": -53.0,
    "skyscraper": -67.1,
    "stegosaurus": -79.0,
    "sunflower": -21.8,
    "sunscreen": -27.8,
    "supermarket": -54.1,
    "tablecloth": -36.1,
    "tablespoon": -44.8,
    "teacup": 1.0,
    "timetable": -41.1,
    "volleyball": -30.5,
    "weasel": -3.5,
}
CODE_WORDS: tuple[str, ...] = tuple(sorted(KWS_THRESHOLDS))

_PHRASE_TAIL = re.compile(r"My code words are:?\s+(.+?)\.?\s*$")
_LOCK = threading.Lock()


# ----------------------------------------------------------------------------- words


def _pocketsphinx():
    try:
        import pocketsphinx
    except ImportError:
        raise VoiceError(
            "the consent recording's words are checked with pocketsphinx: pip install 'pocketsphinx>=5,<6'"
        ) from None
    return pocketsphinx


@lru_cache(maxsize=1)
def _dictionary() -> dict[str, tuple[tuple[str, ...], ...]]:
    """The CMU pronouncing dictionary that pocketsphinx ships: word -> its pronunciations."""
    path = Path(_pocketsphinx().get_model_path("en-us")) / "cmudict-en-us.dict"
    found: dict[str, list[tuple[str, ...]]] = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            parts = line.split()
            if len(parts) >= 2:
                found.setdefault(parts[0].split("(")[0], []).append(tuple(parts[1:]))
    return {word: tuple(prons) for word, prons in found.items()}


def pronunciation(word: str) -> tuple[str, ...] | None:
    """WORD's phonemes in the CMU dictionary when it has exactly one pronunciation, else None."""
    prons = _dictionary().get(word.lower(), ())
    return prons[0] if len(prons) == 1 else None


def phoneme_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two phoneme sequences (insert, delete, substitute: 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def prune(candidates: Iterable[str], min_distance: int = MIN_PHONEME_DISTANCE) -> list[str]:
    """The candidates, in order, that are in the dictionary with one pronunciation of
    PHONEMES_RANGE phonemes and at least MIN_DISTANCE phonemes from every word kept before
    them (so list the best candidates first)."""
    kept: list[tuple[str, tuple[str, ...]]] = []
    lo, hi = PHONEMES_RANGE
    for word in dict.fromkeys(w.lower() for w in candidates):
        phones = pronunciation(word)
        if phones is None or not lo <= len(phones) <= hi:
            continue
        if all(phoneme_distance(phones, other) >= min_distance for _, other in kept):
            kept.append((word, phones))
    return [word for word, _ in kept]


def draw(name: str, count: int = WORDS_PER_PHRASE) -> list[str]:
    """COUNT distinct code words at random (a CSPRNG), none equal to the voice's NAME."""
    pool = [w for w in CODE_WORDS if w != name.lower()]
    chosen: list[str] = []
    while len(chosen) < count:
        word = secrets.choice(pool)
        if word not in chosen:
            chosen.append(word)
    return chosen


def phrase_text(name: str, words: Sequence[str]) -> str:
    """The consent phrase for voice NAME with these code words."""
    return (
        f"I agree that kinema may make a synthetic voice called {name} from my recordings. "
        f"My code words are: {', '.join(words)}."
    )


def phrase_code_words(phrase: str) -> list[str] | None:
    """The code words at the end of PHRASE, or None when it has no four distinct words of
    the current list (a phrase issued before the words were checked)."""
    match = _PHRASE_TAIL.search(phrase)
    if match is None:
        return None
    words = [w for w in re.split(r"[,\s]+", match.group(1).lower()) if w]
    if len(words) != WORDS_PER_PHRASE or len(set(words)) != len(words):
        return None
    return words if all(w in KWS_THRESHOLDS for w in words) else None


# ----------------------------------------------------------------------------- spotting


def _pcm(audio: Audio) -> bytes:
    """16 kHz mono int16 bytes, peak-normalised, padded and dithered (module docstring)."""
    x = mono16k(audio)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        x = x * (0.5 / peak)
    pad = np.zeros(int(PAD_SECONDS * SPOT_RATE))
    x = np.concatenate([pad, x, pad])
    x = x + DITHER * np.random.default_rng(0).standard_normal(x.size)
    return (np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes()


@lru_cache(maxsize=1)
def _decoder():
    # a wider beam than pocketsphinx's 1e-48 keeps a long word's path alive through a
    # slowly read syllable, so it is scored rather than dropped
    return _pocketsphinx().Decoder(loglevel="FATAL", beam=BEAM)


def spot(audio: Audio, thresholds: Mapping[str, float]) -> dict[str, float]:
    """Keyword-spot each word of THRESHOLDS (word -> log10 threshold) in AUDIO; returns the
    words heard, each with its best score (log10 likelihood ratio against pocketsphinx's
    phone loop, at or above its threshold). Words must be in the CMU dictionary."""
    missing = [w for w in thresholds if w not in _dictionary()]
    if missing:
        raise VoiceError(f"'{missing[0]}' is not in the pronouncing dictionary; it cannot be spotted")
    pcm = _pcm(audio)
    fd, keyfile = tempfile.mkstemp(prefix="kinema-kws-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.writelines(f"{word} /1e{threshold:.2f}/\n" for word, threshold in thresholds.items())
        with _LOCK:  # one decoder a process; it holds the search state
            decoder = _decoder()
            decoder.add_kws("code_words", keyfile)
            decoder.activate_search("code_words")
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            segments = list(decoder.seg() or [])
    finally:
        os.unlink(keyfile)
    heard: dict[str, float] = {}
    for segment in segments:
        word = segment.word.strip()
        score = (math.log(segment.prob) / math.log(1.0001) + _KWS_MAX) * _LOG10_PER_UNIT
        heard[word] = max(heard.get(word, -math.inf), round(score, 2))
    return heard


def check_code_words(audio: Audio, words: Sequence[str]) -> dict[str, float]:
    """Refuse (VoiceError, one line naming it) a consent recording in which one of WORDS is
    not heard; returns each word's score."""
    heard = spot(audio, {w: KWS_THRESHOLDS[w] for w in words})
    for word in words:
        if word not in heard:
            raise VoiceError(
                f"the code word '{word}' was not heard in the consent recording: "
                "read the whole phrase, clearly, and record it again"
            )
    return {w: heard[w] for w in words}
