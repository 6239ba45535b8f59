"""Watermark v2 stays readable: files marked before v3 verify as they did (DESIGN.md)."""

from __future__ import annotations

import numpy as np

from kinema.io import Video
from kinema.provenance import watermark, watermark_v2
from kinema.provenance import watermark_code as code
from kinema.world import parse, render_frames

KEY = b"kinema-test-key"
PAYLOAD = bytes.fromhex("0123456789abcdef")


def clip() -> Video:
    return Video(
        render_frames(parse("a red circle moving right on a black background"), seed=0, frames=8), 8.0
    )


def test_a_v2_mark_is_read_by_detect_with_its_version_and_length():
    marked = watermark_v2.embed(clip(), PAYLOAD, KEY)
    assert watermark_v2.detect(marked, KEY).payload == PAYLOAD
    r = watermark.detect(marked, KEY)
    assert r.detected and r.version == 2 and r.payload == PAYLOAD and r.payload_bits == 64
    d = r.to_dict()
    assert d["version"] == 2 and d["algorithm"] == watermark_v2.ALGORITHM == "org.kinema.watermark.v2"
    # under another key there is neither mark
    assert not watermark.detect(marked, b"another key").detected


def test_the_v2_code_is_unchanged_by_v3s_shorter_messages():
    # v2's 80-bit message on its 222 coded bits decodes as before
    message = code.message(PAYLOAD)
    coded = code.encode(message, watermark_v2._coded_bits())
    soft = 1.0 - 2.0 * coded
    soft[np.random.default_rng(0).choice(len(soft), 20, replace=False)] *= -1
    assert np.array_equal(code.viterbi(soft), message)
