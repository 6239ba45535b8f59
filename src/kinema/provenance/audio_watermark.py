"""Keyed, robust audio watermark: a 32-bit payload spread over every 2 seconds of sound.

Design (classical spread spectrum; no learned model):

- Everything happens at a working rate of 16 kHz: the mark is made there and resampled
  to the audio's rate when added; the detector resamples whatever it gets to 16 kHz. So
  resampling to 16 kHz and back, or any rate, costs nothing but the resampler's ripple.
- The mark is periodic with a period of PERIOD samples (2.048 s), so any 3 seconds hold a
  whole period, cyclically shifted. The period is cut into chunks of CHUNK samples; a
  keyed share of the chunks (PILOT_FRACTION) is a known pilot (sync and detection), the
  rest carry the coded payload. Each chunk is a keyed ±1 noise sequence times its chip
  (pilot +1, or a coded bit, scrambled by keyed signs), band-limited to 300–3600 Hz where
  AAC and MP3 at 64 kbit/s keep the waveform.
- Payload: 32 bits + a CRC-8, coded by a rate-1/3, K=7 convolutional code (the NASA
  polynomials 133, 171, 165 octal) with a 6-bit zero tail; 138 coded bits, each spread over
  about 2.4 chunks placed by a keyed permutation, so a loud or silent stretch never holds
  one bit whole. Decoded by soft Viterbi.
- Amplitude follows the speech: the mark is scaled by the host's smoothed envelope (20 ms),
  plus a small floor, and the whole is set so that the mark sits TARGET_SNR_DB below the
  audio (≥ 25 dB SNR); where the audio is silent there is (almost) no mark.
- Detection: mono, resample to 16 kHz, whiten (STFT, each bin divided by its frame's
  smoothed spectral envelope, frames weighted by how far they stand above the noise
  floor), band-limit, fold modulo the period, and cross-correlate with the pilot at every
  cyclic shift (FFT), refined to a fraction of a sample. The score is the peak's z-score
  against the whole correlation surface, which calibrates itself to the content; the
  threshold is set for the PERIOD shifts searched. The payload's chips are read at the
  best shift and decoded; `detected` needs the pilot score above the threshold, the
  CRC to hold, and the chips to agree with the decoded codeword (at most
  MAX_CODED_ERRORS of 138 off), so a false alarm needs all three; the measured rate
  is in benchmarks/audio_watermark_robustness.py.

Gain changes do nothing (everything is normalised); a cut at the start only moves the
cyclic shift; added noise and codecs lower the score smoothly.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import signal
from scipy.special import log_ndtr

from kinema.io import Audio

__all__ = [
    "ALGORITHM",
    "PAYLOAD_BYTES",
    "AudioWatermarkResult",
    "audio_key",
    "detect_audio",
    "embed_audio",
    "snr_db",
    "verify_audio",
]

ALGORITHM = "org.kinema.audio-watermark.v1"
PAYLOAD_BYTES = 4  # 32 bits
PAYLOAD_BITS = PAYLOAD_BYTES * 8
CRC_BITS = 8
WORK_RATE = 16000
PERIOD = 32768  # samples at 16 kHz: 2.048 s
CHUNK = 64
N_CHUNKS = PERIOD // CHUNK
PILOT_FRACTION = 0.35
BAND_HZ = (300.0, 3600.0)
TARGET_SNR_DB = 26.0  # one dB above the 25 dB promised, for rounding and resampling
ENVELOPE_SECONDS = 0.02
FLOOR = 0.08  # the mark's floor, relative to the envelope's mean, so quiet speech keeps some
_K = 7
_POLYS = (0o133, 0o171, 0o165)
CODED_BITS = (PAYLOAD_BITS + CRC_BITS + _K - 1) * len(_POLYS)
# Fewer samples than this (after resampling to 16 kHz) are not searched.
MIN_SECONDS = 1.0
FALSE_ALARM = 1e-6  # per clip, for the pilot score alone (in theory; tones beat it, see below)
# A real mark, attacked, came back with at most 10 of the 138 coded bits off the decoded
# codeword (160 attacked 3-s windows); unmarked audio with at least 26 (1,500 windows of
# speech and of pure tones, where the pilot score alone is not Gaussian and exceeded the
# threshold in about 1 % of tone windows). Detection needs both gates and the CRC.
MAX_CODED_ERRORS = 16


@dataclass(frozen=True)
class AudioWatermarkResult:
    """What detect_audio found. score is the pilot's z-score, threshold the score needed;
    payload is the decoded 32 bits when the CRC holds (None otherwise); p_value the chance
    of a score this high on Gaussian unmarked audio (before the other gates);
    coded_bit_errors how many of the 138 coded chips disagree with the decoded codeword."""

    detected: bool
    payload: bytes | None
    score: float
    threshold: float
    p_value: float
    crc_ok: bool
    offset_seconds: float
    seconds: float
    coded_bit_errors: int = 0
    raw_payload: bytes | None = None  # the decoded bits whether or not the CRC holds

    def to_dict(self) -> dict:
        """JSON-ready form; the payload as lower-case hex."""
        return {
            "detected": self.detected,
            "payload": self.payload.hex() if self.payload is not None else None,
            "score": round(self.score, 3),
            "threshold": round(self.threshold, 3),
            "p_value": self.p_value,
            "crc_ok": self.crc_ok,
            "offset_seconds": round(self.offset_seconds, 4),
            "coded_bit_errors": self.coded_bit_errors,
            "coded_bits": CODED_BITS,
            "seconds_checked": round(self.seconds, 3),
            "algorithm": ALGORITHM,
        }


# ----------------------------------------------------------------------------- keyed layout


def _check_key(key: bytes) -> bytes:
    key = bytes(key)
    if not key:
        raise ValueError("the audio watermark needs a non-empty key")
    return key


def _rng(key: bytes, label: str) -> np.random.Generator:
    seed = hmac.new(key, f"kinema-audio-wm/{label}".encode(), hashlib.sha256).digest()
    return np.random.default_rng(np.frombuffer(seed, dtype=np.uint64))


@dataclass(frozen=True)
class _Layout:
    noise: np.ndarray  # (PERIOD,) ±1 spreading sequence
    pilot: np.ndarray  # (N_CHUNKS,) bool
    bit_of_chunk: np.ndarray  # (N_CHUNKS,) coded-bit index, -1 for pilot chunks
    scramble: np.ndarray  # (CODED_BITS,) ±1
    pilot_template: np.ndarray  # (PERIOD,) band-limited pilot, unit energy


@lru_cache(maxsize=8)
def _layout(key: bytes) -> _Layout:
    noise = _rng(key, "noise").choice(np.array([-1.0, 1.0], np.float32), PERIOD)
    order = _rng(key, "chunks").permutation(N_CHUNKS)
    n_pilot = int(round(PILOT_FRACTION * N_CHUNKS))
    pilot = np.zeros(N_CHUNKS, bool)
    pilot[order[:n_pilot]] = True
    bit_of_chunk = np.full(N_CHUNKS, -1)
    bit_of_chunk[order[n_pilot:]] = np.arange(N_CHUNKS - n_pilot) % CODED_BITS
    scramble = _rng(key, "scramble").choice(np.array([-1.0, 1.0]), CODED_BITS)
    chips = np.where(pilot, 1.0, 0.0)
    template = _bandpass(noise * np.repeat(chips, CHUNK))
    template /= np.linalg.norm(template)
    return _Layout(noise, pilot, bit_of_chunk, scramble, template.astype(np.float32))


def _band_mask(n: int) -> np.ndarray:
    freqs = np.fft.rfftfreq(n, 1.0 / WORK_RATE)
    return ((freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])).astype(np.float64)


def _bandpass(x: np.ndarray) -> np.ndarray:
    """Cyclic, zero-phase band-limiting (exact for a periodic signal of period len(x))."""
    return np.fft.irfft(np.fft.rfft(x) * _band_mask(len(x)), len(x))


# ----------------------------------------------------------------------------- coding


def _crc8(bits: np.ndarray) -> np.ndarray:
    reg = 0
    for b in bits:
        reg ^= int(b) << 7
        reg = ((reg << 1) ^ 0x07) & 0xFF if reg & 0x80 else (reg << 1) & 0xFF
    return np.array([(reg >> (7 - i)) & 1 for i in range(8)], np.uint8)


def _encode(bits: np.ndarray) -> np.ndarray:
    state = 0
    out = []
    for b in np.concatenate([bits, np.zeros(_K - 1, np.uint8)]):
        state = ((state << 1) | int(b)) & ((1 << _K) - 1)
        out.extend(bin(state & p).count("1") & 1 for p in _POLYS)
    return np.array(out, np.uint8)


@lru_cache(maxsize=1)
def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """For each state (last K-1 bits) and input bit: the next state and the ±1 outputs."""
    n_states = 1 << (_K - 1)
    nxt = np.zeros((n_states, 2), int)
    outs = np.zeros((n_states, 2, len(_POLYS)))
    for s in range(n_states):
        for b in (0, 1):
            full = (s << 1) | b
            nxt[s, b] = full & (n_states - 1)
            outs[s, b] = [1.0 - 2.0 * (bin(full & p).count("1") & 1) for p in _POLYS]
    return nxt, outs


def _viterbi(soft: np.ndarray, n_bits: int) -> np.ndarray:
    """Soft Viterbi over (n_bits + tail) steps; soft > 0 means coded bit 0."""
    nxt, outs = _trellis()
    n_states = nxt.shape[0]
    steps = soft.reshape(-1, len(_POLYS))
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    back = np.zeros((len(steps), n_states), int)
    bit_in = np.zeros((len(steps), n_states), np.uint8)
    for t, obs in enumerate(steps):
        gains = outs @ obs  # (states, 2)
        new = np.full(n_states, -np.inf)
        for b in (0, 1):
            cand = metric + gains[:, b]
            for s in range(n_states):  # small trellis: 64 states
                ns = nxt[s, b]
                if cand[s] > new[ns]:
                    new[ns] = cand[s]
                    back[t, ns] = s
                    bit_in[t, ns] = b
        metric = new
    state = 0  # the tail brings the encoder back to zero
    bits = []
    for t in range(len(steps) - 1, -1, -1):
        bits.append(bit_in[t, state])
        state = back[t, state]
    return np.array(bits[::-1][:n_bits], np.uint8)


# ----------------------------------------------------------------------------- resampling


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x.astype(np.float64)
    ratio = Fraction(rate_out, rate_in).limit_denominator(1000)
    return signal.resample_poly(x.astype(np.float64), ratio.numerator, ratio.denominator)


def _mono(audio: Audio) -> np.ndarray:
    return np.asarray(audio.samples, np.float64).mean(axis=0)


def _envelope(x: np.ndarray, rate: int) -> np.ndarray:
    """RMS envelope, smoothed over ENVELOPE_SECONDS."""
    width = max(1, int(ENVELOPE_SECONDS * rate))
    kernel = np.hanning(2 * width + 1)
    kernel /= kernel.sum()
    return np.sqrt(np.convolve(x * x, kernel, mode="same"))


# ----------------------------------------------------------------------------- embedding


def _mark_period(key: bytes, payload: bytes) -> np.ndarray:
    layout = _layout(key)
    bits = np.unpackbits(np.frombuffer(payload, np.uint8))
    coded = _encode(np.concatenate([bits, _crc8(bits)]))
    symbols = (1.0 - 2.0 * coded) * layout.scramble
    chips = np.where(layout.pilot, 1.0, symbols[np.maximum(layout.bit_of_chunk, 0)])
    return _bandpass(layout.noise * np.repeat(chips, CHUNK))


def embed_audio(audio: Audio, payload: bytes, key: bytes, snr: float = TARGET_SNR_DB) -> Audio:
    """Return AUDIO with PAYLOAD (exactly 4 bytes) marked under KEY, SNR dB below it.

    Same rate and channels (every channel gets the same mark). Refuses a payload of
    another length, an empty key, and audio that is silent (nothing to hide a mark in).
    Audio shorter than 3 s is marked but may not be detectable.
    """
    key = _check_key(key)
    payload = bytes(payload)
    if len(payload) != PAYLOAD_BYTES:
        raise ValueError(f"audio watermark payload must be {PAYLOAD_BYTES} bytes, got {len(payload)}")
    host = _mono(audio)
    power = float(np.mean(host * host))
    if power < 1e-10:
        raise ValueError("cannot watermark silent audio")
    n_work = max(1, int(math.ceil(host.size * WORK_RATE / audio.rate)))
    period = _mark_period(key, payload)
    mark = np.tile(period, n_work // PERIOD + 1)[:n_work]
    mark = _resample(mark, WORK_RATE, audio.rate)[: host.size]
    mark = np.pad(mark, (0, host.size - mark.size))
    env = _envelope(host, audio.rate)
    mark *= env + FLOOR * env.mean()
    mark *= math.sqrt(power / max(float(np.mean(mark * mark)), 1e-20)) * 10 ** (-snr / 20)
    samples = np.clip(audio.samples + mark[None].astype(np.float32), -1.0, 1.0)
    return Audio(samples.astype(np.float32), audio.rate)


def snr_db(original: Audio, marked: Audio) -> float:
    """Signal-to-noise ratio (dB) of MARKED against ORIGINAL (same rate and length)."""
    a, b = np.asarray(original.samples, np.float64), np.asarray(marked.samples, np.float64)
    return 10 * math.log10(np.sum(a * a) / max(np.sum((a - b) ** 2), 1e-30))


# ----------------------------------------------------------------------------- detection


def _whiten(x: np.ndarray) -> np.ndarray:
    """Spectrally whitened, band-limited, speech-weighted version of x (16 kHz)."""
    n_fft, hop = 512, 128
    window = signal.get_window("hann", n_fft)
    _, _, spec = signal.stft(x, WORK_RATE, window, n_fft, n_fft - hop, boundary="even", padded=True)
    mag = np.abs(spec)
    # the spectral envelope: magnitude smoothed over ~250 Hz of neighbouring bins
    kernel = np.ones(9) / 9
    smooth = np.apply_along_axis(lambda m: np.convolve(m, kernel, mode="same"), 0, mag) + 1e-12
    white = spec / smooth
    freqs = np.fft.rfftfreq(n_fft, 1.0 / WORK_RATE)
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    white[~band] = 0
    energy = np.mean(mag[band] ** 2, axis=0)
    floor = np.percentile(energy, 10) + 1e-20
    weight = np.clip(1.0 - 2.0 * floor / (energy + 1e-20), 0.0, 1.0)  # noise-only frames → 0
    white *= weight[None]
    _, y = signal.istft(white, WORK_RATE, window, n_fft, n_fft - hop, boundary=True)
    return y[: x.size]


def _fold(y: np.ndarray) -> np.ndarray:
    padded = np.pad(y, (0, (-y.size) % PERIOD))
    return padded.reshape(-1, PERIOD).sum(axis=0)


def _shift(x: np.ndarray, delay: float) -> np.ndarray:
    """x cyclically delayed by a (fractional) number of samples."""
    freqs = np.fft.rfftfreq(x.size)
    return np.fft.irfft(np.fft.rfft(x) * np.exp(-2j * np.pi * freqs * delay), x.size)


def _threshold(hypotheses: int, false_alarm: float = FALSE_ALARM) -> float:
    """z such that the largest of HYPOTHESES standard normals exceeds it with FALSE_ALARM."""
    target = math.log(false_alarm / hypotheses)
    lo, hi = 0.0, 40.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if log_ndtr(-mid) > target else (lo, mid)
    return hi


THRESHOLD = _threshold(PERIOD)


def detect_audio(audio: Audio, key: bytes) -> AudioWatermarkResult:
    """Look for a watermark made with KEY in AUDIO (any rate, any length from 1 s; 3 s hold
    a whole period). Returns an AudioWatermarkResult; refuses an empty key."""
    key = _check_key(key)
    layout = _layout(key)
    x = _resample(_mono(audio), audio.rate, WORK_RATE)
    seconds = x.size / WORK_RATE
    if x.size < MIN_SECONDS * WORK_RATE or not np.any(x):
        return AudioWatermarkResult(False, None, 0.0, THRESHOLD, 1.0, False, 0.0, seconds)
    folded = _fold(_whiten(x))
    folded = np.fft.irfft(np.fft.rfft(folded) * _band_mask(PERIOD), PERIOD)
    # corr[d] = <folded, template delayed by d>
    corr = np.fft.irfft(np.fft.rfft(folded) * np.conj(np.fft.rfft(layout.pilot_template)), PERIOD)
    peak = int(np.argmax(corr))
    center = np.median(corr)
    spread = 1.4826 * np.median(np.abs(corr - center)) + 1e-30
    score = float((corr[peak] - center) / spread)
    # sub-sample refinement (parabola through the peak and its neighbours)
    a, b, c = corr[(peak - 1) % PERIOD], corr[peak], corr[(peak + 1) % PERIOD]
    denom = a - 2 * b + c
    frac = 0.5 * (a - c) / denom if denom < 0 else 0.0
    delay = peak + float(np.clip(frac, -0.5, 0.5))
    aligned = _shift(folded, -delay)  # now aligned with the mark's period start
    chunk_values = (aligned * layout.noise).reshape(N_CHUNKS, CHUNK).sum(axis=1)
    payload_chunks = ~layout.pilot
    soft = np.bincount(
        layout.bit_of_chunk[payload_chunks], weights=chunk_values[payload_chunks], minlength=CODED_BITS
    )
    soft = soft * layout.scramble
    decoded = _viterbi(soft, PAYLOAD_BITS + CRC_BITS)
    bits, crc = decoded[:PAYLOAD_BITS], decoded[PAYLOAD_BITS:]
    crc_ok = bool(np.array_equal(_crc8(bits), crc))
    errors = int(np.sum(_encode(decoded) != (soft < 0)))
    found = score > THRESHOLD and crc_ok and errors <= MAX_CODED_ERRORS
    p_value = float(min(1.0, PERIOD * math.exp(log_ndtr(-score))))
    return AudioWatermarkResult(
        detected=found,
        payload=np.packbits(bits).tobytes() if crc_ok else None,
        score=score,
        threshold=THRESHOLD,
        p_value=p_value,
        crc_ok=crc_ok,
        offset_seconds=(delay % PERIOD) / WORK_RATE,
        seconds=seconds,
        coded_bit_errors=errors,
        raw_payload=np.packbits(bits).tobytes(),
    )


# ----------------------------------------------------------------------------- keys and files


def audio_key(home: Path | None = None) -> bytes:
    """The audio watermark key: derived from the local watermark key (keys.watermark_key),
    under its own label, so the audio and video marks never share a spreading sequence."""
    from kinema.provenance.keys import watermark_key
    from kinema.state import kinema_home

    base = watermark_key(Path(home) if home is not None else kinema_home())
    return hmac.new(base, b"kinema-audio-watermark-v1", hashlib.sha256).digest()


def payload_for(key: bytes, fields: dict) -> bytes:
    """A 4-byte payload: a keyed hash of FIELDS (JSON, sorted keys), as publish derives
    the video payload from the settings."""
    import json

    text = json.dumps(fields, sort_keys=True, default=str).encode()
    return hmac.new(_check_key(key), text, hashlib.sha256).digest()[:PAYLOAD_BYTES]


def verify_audio(audio: Audio | None, home: Path | None = None) -> dict:
    """The `audio_watermark` part of `kinema verify` for decoded AUDIO; never raises.

    {"detected": bool, "payload": hex | None, "score": float, "checked": bool, ...};
    checked is False (with a reason) when there is no audio or no local keys.
    """
    if audio is None:
        return {"detected": False, "payload": None, "score": 0.0, "checked": False, "reason": "no audio"}
    try:
        key = audio_key(home)
    except Exception as exc:  # noqa: BLE001 - verify never crashes on a file
        return {
            "detected": False,
            "payload": None,
            "score": 0.0,
            "checked": False,
            "reason": f"no key: {exc}",
        }
    try:
        result = detect_audio(audio, key).to_dict()
    except Exception as exc:  # noqa: BLE001
        reason = f"audio watermark detection failed: {type(exc).__name__}: {exc}"
        return {"detected": False, "payload": None, "score": 0.0, "checked": False, "reason": reason}
    result["checked"] = True
    return result
