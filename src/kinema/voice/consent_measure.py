"""How well the consent recording's code-word check works, measured offline.

No recorded human speech is available here, so the recordings are eSpeak NG's, in two
disjoint sets of voices:

- `calibration_scores` and `choose_words` set each code word's keyword-spotting
  threshold (consent_words.py says why per word) and choose the list, on
  CALIBRATION_VOICES: eSpeak variants that are not kinema's built-in voices (US, British,
  RP and Scottish English, as the built-in ones are), at RATES.
- `measure` reports accept/refuse counts on MEASURE_VOICES, kinema's eight built-in
  voices (US, British and Scottish English), at RATES, for four cases: the phrase read
  as issued, another text, the phrase with one code word swapped for another word of the
  list, and noise. The first should be accepted, the other three refused.

    python -m kinema.voice.consent_measure [--trials N] [--seed S]   → JSON on stdout
    python -m kinema.voice.consent_measure --calibrate WORDS.txt     → thresholds as JSON

Measured (the word check alone; 96 trials a case with seed 0 and 96 with seed 1, the 51
words of consent_words.KWS_THRESHOLDS):

    case           trials  accepted  refused
    phrase            192       191        1
    other text        192         0      192
    swapped word      192         0      192
    noise             192         0      192
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kinema.errors import InputError
from kinema.io import Audio
from kinema.voice.consent_words import (
    CODE_WORDS,
    KWS_THRESHOLDS,
    WORDS_PER_PHRASE,
    check_code_words,
    phrase_text,
    prune,
    spot,
)
from kinema.voice.tts import BUILTIN_VOICES, SpeechSettings, synthesize

__all__ = [
    "CALIBRATION_VOICES",
    "MEASURE_VOICES",
    "RATES",
    "calibration_scores",
    "choose_words",
    "measure",
    "recording",
]

CALIBRATION_VOICES = (
    "en-us+m1",
    "en-us+m2",
    "en-us+m4",
    "en-us+m5",
    "en-us+m6",
    "en-us+f1",
    "en-us+f2",
    "en-us+f4",
    "en+m4",
    "en+f1",
    "en+f3",
    "en-gb-x-rp+m5",
    "en-gb-x-rp+f4",
    "en-gb-scotland+m3",
    "en-gb-scotland+m5",
    "en-gb-scotland+f1",
    "en-gb-scotland+f3",
)
MEASURE_VOICES = tuple(voice for voice, _ in BUILTIN_VOICES.values())
RATES = (130, 165, 200)  # words a minute: eSpeak's default ±20 %
CASES = ("phrase", "other text", "swapped word", "noise")
SCORE_FLOOR = -80.0  # log10; a word scoring below it anywhere counts as not there at all
ABSENT_QUANTILE = 99.0  # percentile of a word's scores where it was not read
THRESHOLD_MARGIN = 1.0  # log10 units: threshold above that percentile, readings above the threshold
NAMES = ("ada", "bram", "cleo", "dorin", "esme", "farid", "gwen", "hiro", "ines", "jory")
OTHER_TEXTS = (
    "The birch canoe slid on the smooth planks and glued the sheet to the dark blue background.",
    "It is easy to tell the depth of a well, and these days a chicken leg is a rare dish.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow.",
    "I do not agree to anything, and nobody may use my voice for any purpose at all.",
    "We walked along the beach until the evening light faded behind the hills and the town.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother.",
    "I agree that this studio may keep my recordings for one year. My answer is yes.",
    "The meeting starts at nine, so bring the printed report and a pen for the notes.",
    "A large size in stockings is hard to sell, and the boy was there when the sun rose.",
)


def recording(text: str, voice: str, rate: int) -> Audio:
    """eSpeak NG reading TEXT in VOICE at RATE words a minute."""
    return synthesize(text, SpeechSettings(voice=voice, rate_wpm=rate))


def _noise(rng: random.Random, seconds: float = 6.0, rate: int = 16000) -> Audio:
    """White, pink or brown noise at a speech-like level."""
    gen = np.random.default_rng(rng.randrange(2**32))
    white = gen.standard_normal(int(seconds * rate))
    colour = rng.choice(("white", "pink", "brown"))
    if colour == "brown":
        x = np.cumsum(white)
        x -= np.convolve(x, np.ones(801) / 801, mode="same")  # keep it from drifting away
    elif colour == "pink":
        spectrum = np.fft.rfft(white)
        spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
        x = np.fft.irfft(spectrum, white.size)
    else:
        x = white
    return Audio((0.1 * x / (np.std(x) + 1e-12)).astype(np.float32), rate)


# ----------------------------------------------------------------------------- measure


def _trial(case: str, rng: random.Random, voice: str, rate: int) -> tuple[Audio, list[str]]:
    """One recording for CASE and the code words the phrase it answers asks for."""
    name = rng.choice(NAMES)
    words = rng.sample([w for w in CODE_WORDS if w != name], WORDS_PER_PHRASE)
    if case == "phrase":
        return recording(phrase_text(name, words), voice, rate), words
    if case == "swapped word":
        spoken = list(words)
        spoken[rng.randrange(WORDS_PER_PHRASE)] = rng.choice([w for w in CODE_WORDS if w not in words])
        return recording(phrase_text(name, spoken), voice, rate), words
    if case == "other text":
        return recording(rng.choice(OTHER_TEXTS), voice, rate), words
    return _noise(rng), words


def measure(trials: int = 48, seed: int = 0, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Accept/refuse counts of the code-word check over TRIALS recordings per case (voices
    MEASURE_VOICES and RATES taken in turn, words and names drawn from SEED)."""
    if trials < 1:
        raise InputError(f"trials must be at least 1, got {trials}")
    rng = random.Random(seed)
    rows = []
    for case in CASES:
        accepted = 0
        for i in range(trials):
            voice = MEASURE_VOICES[i % len(MEASURE_VOICES)]
            rate = RATES[(i // len(MEASURE_VOICES)) % len(RATES)]
            audio, words = _trial(case, rng, voice, rate)
            try:
                check_code_words(audio, words)
                accepted += 1
            except InputError:
                pass
        rows.append({"case": case, "trials": trials, "accepted": accepted, "refused": trials - accepted})
        if progress:
            progress(f"{case}: {accepted} of {trials} accepted")
    return {
        "voices": list(MEASURE_VOICES),
        "rates_wpm": list(RATES),
        "code_words": len(CODE_WORDS),
        "cases": rows,
    }


# ----------------------------------------------------------------------------- calibrate


def calibration_scores(
    candidates: Sequence[str],
    reps: int = 24,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Each candidate's scores where it was read and where it was not.

    Every candidate is read REPS times, four to a phrase in random groups, by
    CALIBRATION_VOICES at RATES, and each of OTHER_TEXTS is read by every voice; every
    recording is spotted for all candidates at SCORE_FLOOR (a word not found scores the
    floor). Returns {"read": {word: [...]}, "absent": {word: [...]}}.
    """
    words = list(dict.fromkeys(candidates))
    rng = random.Random(seed)
    floor = dict.fromkeys(words, SCORE_FLOOR)
    read: dict[str, list[float]] = {w: [] for w in words}
    absent: dict[str, list[float]] = {w: [] for w in words}

    def score(audio: Audio, spoken: Sequence[str]) -> None:
        heard = spot(audio, floor)
        for w in words:
            (read if w in spoken else absent)[w].append(heard.get(w, SCORE_FLOOR))

    for rep in range(reps):
        order = rng.sample(words, len(words))
        for i in range(0, len(order), WORDS_PER_PHRASE):
            group = order[i : i + WORDS_PER_PHRASE]
            voice, rate = rng.choice(CALIBRATION_VOICES), rng.choice(RATES)
            score(recording(phrase_text(rng.choice(NAMES), group), voice, rate), group)
        if progress:
            progress(f"calibration pass {rep + 1} of {reps}")
    for voice in CALIBRATION_VOICES:
        for text in OTHER_TEXTS:
            score(recording(text, voice, rng.choice(RATES)), ())
    return {"read": read, "absent": absent}


def choose_words(scores: dict[str, dict[str, list[float]]], order: Sequence[str]) -> dict[str, Any]:
    """The code-word list and thresholds from `calibration_scores`.

    A word's threshold is THRESHOLD_MARGIN above the ABSENT_QUANTILE percentile of its
    scores where it was not read (so it is heard where it was not said about 1 time in
    100, or less); the word is kept when every one of its readings scored at least
    THRESHOLD_MARGIN above that threshold. Kept words are then `prune`d for phoneme
    distance in ORDER (best candidates first). Returns {"thresholds", "words"} (per-word
    statistics, for the record).
    """
    stats: dict[str, dict[str, float]] = {}
    for w in order:
        if w not in scores["read"]:
            continue
        high = float(np.percentile(scores["absent"][w], ABSENT_QUANTILE))
        low = float(min(scores["read"][w]))
        stats[w] = {
            "read_min": round(low, 2),
            "absent_p99": round(high, 2),
            "threshold": round(high + THRESHOLD_MARGIN, 1),
            "reads": len(scores["read"][w]),
        }
    passing = [w for w in stats if stats[w]["read_min"] >= stats[w]["threshold"] + THRESHOLD_MARGIN]
    kept = prune(passing)
    return {"thresholds": {w: stats[w]["threshold"] for w in sorted(kept)}, "words": stats}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: measure (default) or calibrate; JSON on stdout, progress on stderr."""
    parser = argparse.ArgumentParser(prog="python -m kinema.voice.consent_measure")
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=24)
    parser.add_argument("--calibrate", metavar="WORDS.txt", help="candidate words, best first, any spacing")
    parser.add_argument(
        "--scores", metavar="SCORES.json", help="with --calibrate: also write every score here"
    )
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.calibrate:
        with open(args.calibrate, encoding="utf-8") as f:
            candidates = f.read().split()
        scores = calibration_scores(candidates, args.reps, args.seed, progress)
        if args.scores:
            with open(args.scores, "w", encoding="utf-8") as f:
                json.dump(scores, f)
        result = choose_words(scores, candidates)
    else:
        result = measure(args.trials, args.seed, progress)
        result["thresholds_from"] = (
            f"{len(KWS_THRESHOLDS)} words calibrated on {len(CALIBRATION_VOICES)} voices"
        )
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
