"""kinema's GIF writer keeps a background's few shades exactly when a clip has more than
256 colours (a watermark's faint shading on black used to become one colour)."""

from __future__ import annotations

import numpy as np

from kinema.io import Video, read_video, write_video
from kinema.io.video import gif_palette


def test_a_backgrounds_shades_survive_a_many_coloured_gif(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    shade = np.round(np.linspace(0, 9, 64)).astype(np.uint8)  # grey 0…9 across a black background
    frames[:, :, :] = shade[None, None, :, None]
    frames[:, 40:, 40:] = rng.integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)  # > 256 colours
    assert len(np.unique(frames.reshape(-1, 3), axis=0)) > 256
    palette = gif_palette(frames)
    assert {tuple(c) for c in palette} >= {(v, v, v) for v in range(10)}
    write_video(Video(frames, 8.0), tmp_path / "a.gif")
    back = read_video(tmp_path / "a.gif").frames
    assert np.array_equal(back[:, :40], frames[:, :40])  # the shading is exact
