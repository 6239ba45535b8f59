"""The watermark's channel code: what the payload bits become before they are drawn.

The message is the payload (64 bits; v3 marks on small frames carry 32) and its CRC-16/CCITT (so a decode that went wrong says so
instead of returning wrong bits: a random decode passes with probability 2**-16). It is
coded by a tail-biting rate-1/3 convolutional code of constraint length 9 (free distance
18), punctured to the number of coded bits the mark has room for, and decoded by soft
Viterbi. Nothing here knows about pixels, keys or layout: watermark.py whitens the
message, spreads the coded bits over the mark's cells and reads them back as soft values.
"""

from __future__ import annotations

import binascii
from functools import lru_cache

import numpy as np

__all__ = [
    "CHECK_BITS",
    "MESSAGE_BITS",
    "PAYLOAD_BITS",
    "PAYLOAD_BYTES",
    "check",
    "encode",
    "kept",
    "message",
    "viterbi",
]

PAYLOAD_BYTES = 8  # 64 bits
PAYLOAD_BITS = PAYLOAD_BYTES * 8
CHECK_BITS = 16  # CRC-16/CCITT over the payload, inside the coded message
MESSAGE_BITS = PAYLOAD_BITS + CHECK_BITS
POLYS = (0o557, 0o663, 0o711)  # rate 1/3, constraint length 9 (free distance 18)
K = 9
WRAP = 5 * K  # steps of circular context on each side of the tail-biting decode


@lru_cache(maxsize=8)
def kept(sent: int, message_bits: int = MESSAGE_BITS) -> np.ndarray:
    """Indices of the coded bits that are sent: the punctured ones, spread evenly along
    the message, are all from the third generator (the other two carry the full code).

    Puncturing rather than repeating some bits more than others: bits on fewer cells
    would be the weak ones, and 80 message bits at rate 1/3 make more coded bits than
    the data cells hold three times over.
    """
    n, r = message_bits, len(POLYS)
    drop = n * r - sent
    if not 0 <= drop < n:
        raise ValueError(f"a {n}-bit message sends {n}..{n * r} coded bits, not {sent}")
    gone = {r * int((i + 0.5) * n / drop) + r - 1 for i in range(drop)}
    return np.array([i for i in range(n * r) if i not in gone], np.int64)


def check(payload: bytes) -> np.ndarray:
    """The payload's CRC-16/CCITT (polynomial 0x1021, initial 0xFFFF) as CHECK_BITS bits.

    A CRC rather than a keyed MAC: the layout is keyed already, and a CRC catches every
    error burst up to 16 bits long (Viterbi errors come in short bursts), not just most.
    """
    crc = binascii.crc_hqx(payload, 0xFFFF)
    return np.unpackbits(np.frombuffer(crc.to_bytes(2, "big"), np.uint8))


def message(payload: bytes) -> np.ndarray:
    """Payload bits then check bits (MESSAGE_BITS), before whitening."""
    return np.concatenate([np.unpackbits(np.frombuffer(payload, np.uint8)), check(payload)])


@lru_cache(maxsize=1)
def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """next_state[s, b] and output bits out[s, b, :] of the encoder."""
    n_states = 1 << (K - 1)
    nxt = np.zeros((n_states, 2), np.int64)
    out = np.zeros((n_states, 2, len(POLYS)), np.uint8)
    for s in range(n_states):
        for b in (0, 1):
            reg = (b << (K - 1)) | s  # newest bit on top
            nxt[s, b] = reg >> 1
            for j, g in enumerate(POLYS):
                out[s, b, j] = bin(reg & g).count("1") & 1
    return nxt, out


def _conv_encode(bits: np.ndarray) -> np.ndarray:
    """All len(POLYS) outputs per message bit, tail-biting: the encoder starts in the state
    its last K-1 input bits leave it in, so it ends where it started and needs no tail."""
    nxt, out = _trellis()
    s = 0
    for b in bits[-(K - 1) :]:
        s = nxt[s, b]
    coded = []
    for b in bits:
        coded.append(out[s, b])
        s = nxt[s, b]
    return np.concatenate(coded)


def encode(bits: np.ndarray, sent: int) -> np.ndarray:
    """The SENT coded bits of a message (payload and check bits): the tail-biting code,
    punctured."""
    return _conv_encode(bits)[kept(sent, len(bits))]


def viterbi(soft: np.ndarray, message_bits: int = MESSAGE_BITS) -> np.ndarray:
    """Soft-decision Viterbi decode of the sent coded bits of a MESSAGE_BITS-bit message
    (soft > 0 favours bit 0).

    Punctured positions count as erasures (0). The tail-biting word is decoded circularly
    extended by WRAP steps on each side from an unknown state, keeping the middle: a
    standard near-maximum-likelihood decode. Returns the MESSAGE_BITS message bits.
    MESSAGE_BITS is the payload's bits plus CHECK_BITS (80 for 64 payload bits).
    """
    _, out = _trellis()
    n_states, r = out.shape[0], len(POLYS)
    full = np.zeros(message_bits * r)
    full[kept(len(soft), message_bits)] = soft
    n, wrap = message_bits, min(WRAP, message_bits)
    ext = np.concatenate([full[(n - wrap) * r :], full, full[: wrap * r]]).reshape(-1, r)
    # State d = (b << (K-2)) | (s >> 1) is reached from s = 2*(d mod half) + {0, 1} on bit b.
    half = n_states // 2
    d = np.arange(n_states)
    b_in = d // half
    pred = np.stack([2 * (d % half), 2 * (d % half) + 1], axis=1)  # (S, 2)
    sign = 1.0 - 2.0 * out[pred, b_in[:, None]].astype(np.float64)  # (S, 2, r)
    metric = np.zeros(n_states)
    back = np.zeros((len(ext), n_states), np.int64)
    for t, received in enumerate(ext):
        cand = metric[pred] + sign @ received  # (S, 2)
        choice = np.argmax(cand, axis=1)
        metric = cand[d, choice]
        back[t] = pred[d, choice]
    state, bits = int(np.argmax(metric)), np.zeros(len(ext), np.uint8)
    for t in range(len(ext) - 1, -1, -1):
        bits[t] = b_in[state]
        state = back[t, state]
    return bits[wrap : wrap + n]
