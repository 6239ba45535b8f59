"""Live previews from kinema's own pipeline: shown at the steps asked for, with the
frames of the clip as the user will get it, and never changing the clip."""

import numpy as np
import pytest
import torch

from kinema.io import Video
from kinema.pipelines.latent_preview import LatentPreviewer
from kinema.pipelines.loading import load
from kinema.pipelines.preview import Preview

PROMPT = "a red circle moving right on a black background"


@pytest.fixture(scope="module")
def pipe(tiny_model):
    return load(tiny_model)


def _recorder():
    shown = []
    return shown, Preview(lambda step, total, frames: shown.append((step, total, frames)), every=2)


def test_due_every_k_steps_and_at_the_last():
    preview = Preview(lambda *a: None, every=4)
    assert [s for s in range(1, 11) if preview.due(s, 10)] == [4, 8, 10]
    with pytest.raises(ValueError):
        Preview(lambda *a: None, every=0)


def test_generate_previews_steps_and_shapes_and_leaves_the_clip_alone(pipe):
    shown, preview = _recorder()
    with_preview = pipe(PROMPT, seed=5, frames=14, steps=5, preview=preview)
    without = pipe(PROMPT, seed=5, frames=14, steps=5)
    assert [(s, n) for s, n, _ in shown] == [(2, 5), (4, 5), (5, 5)]
    for _, _, frames in shown:
        assert frames.dtype == np.uint8 and frames.shape == (14, 64, 64, 3)
    assert np.array_equal(with_preview.frames, without.frames)
    # the last preview is the clip, approximately (a linear map, not the VAE's decode)
    error = np.abs(shown[-1][2].astype(float) - with_preview.frames.astype(float)).mean()
    assert error < 64


def test_first_image_is_in_the_preview(pipe):
    first = np.zeros((64, 64, 3), np.uint8)
    first[:, :32] = (220, 30, 30)
    shown, preview = _recorder()
    pipe(PROMPT, seed=1, steps=2, keyframes={0: first}, preview=preview)
    # a held latent's clean estimate is the image's own latent, so the preview's frame 0 is
    # the image as the preview map shows it from the first step on
    pixels = torch.from_numpy(first).float().div(127.5).sub(1).permute(2, 0, 1)[None, :, None]
    expected = pipe.previewer(pipe.vae.encode(pixels))[0].astype(int)
    for _, _, frames in shown:
        assert np.abs(frames[0].astype(int) - expected).max() <= 2


def test_extend_preview_shows_the_input_then_the_new_frames(pipe):
    source = pipe(PROMPT, seed=2, frames=9, steps=2)
    shown, preview = _recorder()
    longer = pipe.extend(source, PROMPT, 8, seed=3, steps=2, preview=preview)
    assert shown and all(f.shape == (17, 64, 64, 3) for _, _, f in shown)
    assert np.array_equal(shown[-1][2][:9], source.frames)  # the input's own frames, exactly
    backward = pipe.extend(source, PROMPT, 8, seed=3, steps=2, backward=True, preview=preview)
    assert np.array_equal(shown[-1][2][-9:], source.frames)
    assert np.array_equal(longer.frames, pipe.extend(source, PROMPT, 8, seed=3, steps=2).frames)
    assert np.array_equal(backward.frames[-9:], source.frames)


def test_inpaint_preview_keeps_the_pixels_outside_the_region(pipe):
    source = pipe(PROMPT, seed=2, frames=9, steps=2)
    region = np.zeros((64, 64), bool)
    region[16:40, 16:40] = True
    shown, preview = _recorder()
    painted = pipe.inpaint(source, PROMPT, region, seed=4, steps=3, preview=preview)
    assert [(s, n) for s, n, _ in shown] == [(2, 3), (3, 3)]
    for _, _, frames in shown:
        assert np.array_equal(frames[:, ~region], source.frames[:, ~region])
    assert np.array_equal(painted.frames, pipe.inpaint(source, PROMPT, region, seed=4, steps=3).frames)


def test_remix_and_long_clips_preview_every_window(pipe):
    source = Video(np.full((9, 64, 64, 3), 40, np.uint8), 8.0)
    shown, preview = _recorder()
    pipe.remix(source, PROMPT, strength=0.5, seed=1, steps=4, preview=preview)
    assert shown and all(f.shape == (9, 64, 64, 3) for _, _, f in shown)
    shown.clear()
    window = pipe.defaults["window"]
    pipe(PROMPT, seed=1, frames=window + 8, steps=2, preview=preview)
    lengths = [len(f) for _, _, f in shown]
    # window by window: the first window's frames, then the whole clip
    assert lengths[0] == window and lengths[-1] == window + 8 and lengths == sorted(lengths)


def test_linear_map_is_deterministic_and_shaped(pipe):
    vae = pipe.vae
    c = vae.config
    a = LatentPreviewer.fit(vae.encode, vae.decode, c.spatial_factor, c.temporal_factor)
    b = LatentPreviewer.fit(vae.encode, vae.decode, c.spatial_factor, c.temporal_factor)
    latents = torch.randn(1, c.latent_channels, 3, 4, 6, generator=torch.Generator().manual_seed(0))
    frames = a(latents)
    assert frames.shape == (9, 4 * c.spatial_factor, 6 * c.spatial_factor, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, b(latents))
