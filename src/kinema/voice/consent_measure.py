"""How well the consent recording's code-word check works, measured offline.

No recorded human speech is available here, so the recordings are eSpeak NG's, in two
disjoint sets of voices:

- `calibrate` sets each code word's keyword-spotting threshold (consent_words.py says
  why per word) and chooses the list, on CALIBRATION_VOICES: eSpeak variants that are not
  kinema's built-in voices, at RATES.
- `measure` reports accept/refuse counts on MEASURE_VOICES, kinema's eight built-in
  voices (US, British and Scottish English), at RATES, for four cases: the phrase read
  as issued, another text, the phrase with one code word swapped for another word of the
  list, and noise. The first should be accepted, the other three refused.

    python -m kinema.voice.consent_measure [--trials N] [--seed S]   → JSON on stdout
    python -m kinema.voice.consent_measure --calibrate WORDS.txt     → thresholds as JSON
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

__all__ = ["CALIBRATION_VOICES", "MEASURE_VOICES", "RATES", "calibrate", "measure", "recording"]

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
    "en-gb-scotland+f3",
)
MEASURE_VOICES = tuple(voice for voice, _ in BUILTIN_VOICES.values())
RATES = (130, 165, 200)  # words a minute: eSpeak's default ±20 %
CASES = ("phrase", "other text", "swapped word", "noise")
SCORE_FLOOR = -80.0  # log10; a word scoring below it anywhere counts as not there at all
ABSENT_QUANTILE = 99.0  # percentile of a word's scores where it was not read
MIN_SEPARATION = 4.0  # log10 units between the lowest read score and that percentile
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


def calibrate(
    candidates: Sequence[str],
    reps: int = 16,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Choose the code words among CANDIDATES and set each one's threshold.

    Every candidate is read REPS times, four to a phrase in random groups, by
    CALIBRATION_VOICES at RATES, and each of OTHER_TEXTS is read by every voice; every
    recording is spotted for all candidates at SCORE_FLOOR. A word's separation is its
    lowest score where read minus the ABSENT_QUANTILE percentile of its scores where not;
    words with separation ≥ MIN_SEPARATION are kept, best first, then `prune`d for
    phoneme distance; each threshold sits midway. Returns {"thresholds", "words"}.
    """
    words = prune(candidates)
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
    stats = {}
    for w in words:
        low = min(read[w])
        high = float(np.percentile(absent[w], ABSENT_QUANTILE))
        stats[w] = {
            "read_min": round(low, 2),
            "absent_p99": round(high, 2),
            "separation": round(low - high, 2),
        }
    ranked = sorted(
        (w for w in words if stats[w]["separation"] >= MIN_SEPARATION), key=lambda w: -stats[w]["separation"]
    )
    kept = prune(ranked)
    thresholds = {w: round(stats[w]["absent_p99"] + stats[w]["separation"] / 2, 1) for w in sorted(kept)}
    return {"thresholds": thresholds, "words": stats}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: measure (default) or calibrate; JSON on stdout, progress on stderr."""
    parser = argparse.ArgumentParser(prog="python -m kinema.voice.consent_measure")
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=16)
    parser.add_argument("--calibrate", metavar="WORDS.txt", help="candidate words, best first, any spacing")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.calibrate:
        with open(args.calibrate, encoding="utf-8") as f:
            candidates = f.read().split()
        result = calibrate(candidates, args.reps, args.seed, progress)
    else:
        result = measure(args.trials, args.seed, progress)
        result["thresholds_from"] = (
            f"{len(KWS_THRESHOLDS)} words calibrated on {len(CALIBRATION_VOICES)} voices"
        )
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
