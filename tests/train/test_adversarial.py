import dataclasses

import numpy as np
import torch

from kinema.train.adversarial import ClipDiscriminator, gradient_loss
from kinema.train.data import preset_samples
from kinema.train.presets import get_preset, override
from kinema.train.stages import load_vae
from kinema.train.trainer import Trainer
from kinema.world import COLOURS, HELD_OUT_PAIRS, parse, render_frames
from kinema.world.dataset import MIN_CONTRAST, free_colour_sample


def test_the_gradient_loss_sees_edges_and_wobble():
    clip = torch.zeros(1, 3, 5, 16, 16)
    clip[..., 4:12, 4:12] = 1.0
    assert gradient_loss(clip, clip) == 0
    blurred = torch.nn.functional.avg_pool3d(clip, (1, 3, 3), stride=1, padding=(0, 1, 1))
    assert gradient_loss(blurred, clip) > 0.01  # softened edges
    wobbly = clip.clone()
    wobbly[:, :, 2, :, 12] = 1.0  # one frame's edge a column wider: the same spatial edges elsewhere
    assert gradient_loss(wobbly, clip) > 0


def test_the_discriminator_judges_every_frame_patch_by_patch():
    logits, features = ClipDiscriminator()(torch.zeros(2, 3, 5, 64, 64))
    assert logits.shape == (2 * 5, 1, 8, 8) and len(features) == 3


def test_free_colour_clips_keep_contrast_and_the_held_out_pairs_out():
    for i in range(40):
        s = free_colour_sample(0, 0, i, frames=5, size=32)
        assert s.prompt == "" and s.frames.shape == (5, 32, 32, 3)
        background = s.frames[0, 0, 0].astype(float)
        # whatever is far from the background is an object painted far enough from it
        far = np.linalg.norm(s.frames.reshape(-1, 3) - background, axis=1)
        assert far.max() >= MIN_CONTRAST - 2
    again = free_colour_sample(0, 0, 7, frames=5, size=32).frames
    assert np.array_equal(again, free_colour_sample(0, 0, 7, frames=5, size=32).frames)


def test_the_renderer_paints_a_scene_in_any_colour():
    scene = parse("a big red square staying still on a black background")
    pink = render_frames(
        scene, seed=3, frames=1, size=32, colours=((255, 105, 180),), background=(10, 20, 30)
    )
    plain = render_frames(scene, seed=3, frames=1, size=32)
    assert tuple(pink[0, 0, 0]) == (10, 20, 30) and (pink == [255, 105, 180]).all(-1).any()
    # the same geometry: the object covers the same pixels
    assert np.array_equal((pink != [10, 20, 30]).any(-1), (plain != 0).any(-1))
    assert ("red", "triangle") in HELD_OUT_PAIRS and "pink" not in COLOURS


def test_a_preset_mixes_free_colour_clips_in_and_v1_streams_stay():
    v1 = preset_samples(get_preset("vae-tiny"), 0, 0, 12)
    mixed = preset_samples(get_preset("vae-gan-tiny"), 0, 0, 12)
    assert all(s.prompt for s in v1)
    assert 0 < sum(s.prompt == "" for s in mixed) < 12
    # the clips a v1 preset draws are the same clips whatever else a preset mixes in
    for a, b in zip(v1, mixed, strict=True):
        if b.prompt:
            assert a.prompt == b.prompt and np.array_equal(a.frames, b.frames)


def test_an_adversarial_run_resumes_exactly_with_its_discriminator(tmp_path):
    preset = override(get_preset("vae-gan-tiny"), ["steps=3", "adversarial_start=1"])
    first = Trainer(preset, tmp_path / "a")
    first.run(max_steps=2, progress=False, validate=False)
    resumed = Trainer(preset, tmp_path / "a")
    assert resumed.step == 2
    resumed.run(progress=False, validate=False)
    straight = Trainer(preset, tmp_path / "b")
    straight.run(progress=False, validate=False)
    for a, b in (
        (resumed.model, straight.model),
        (resumed.stage.discriminator, straight.stage.discriminator),
    ):
        assert all(
            torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
        )
    # the encoder never moved, and what was written loads as a VAE
    assert torch.equal(
        resumed.model.enc_in.conv.weight, Trainer(preset, tmp_path / "c").model.enc_in.conv.weight
    )
    vae = load_vae(tmp_path / "a")
    assert vae.config.latent_channels == 4


def test_corner_errors_weigh_more_with_edge_focus():
    from kinema.train.adversarial import rim_mask, weighted_reconstruction

    target = torch.zeros(1, 3, 1, 16, 16)
    target[..., 4:12, 4:12] = 1.0
    rim = rim_mask(target)
    assert rim[0, 0, 0, 8, 8] == 0 and rim[0, 0, 0, 0, 0] == 0 and rim[0, 0, 0, 4, 4] == 1
    rounded = target.clone()
    rounded[..., 4, 4] = rounded[..., 4, 11] = 0.0  # two corners cut
    plain, focused = weighted_reconstruction(rounded, target, 0), weighted_reconstruction(rounded, target, 8)
    assert focused > 1.5 * plain  # a rim is much of a 16-pixel frame; far more at 64
    assert weighted_reconstruction(target, target, 8) == 0


def test_a_decoder_warm_started_from_a_vae_with_a_refiner_drops_the_refiner(tmp_path):
    # the refiner was fitted to the source decoder's pictures, which this training changes
    plain = override(get_preset("vae-gan-tiny"), ["steps=1"])
    Trainer(plain, tmp_path / "plain").run(progress=False, validate=False)
    source = load_vae(tmp_path / "plain")
    weights = {**source.state_dict(), "refiner.out.weight": torch.zeros(3, 8, 3, 3)}
    trainer = Trainer(dataclasses.replace(plain, steps=2), tmp_path / "again")
    kept = trainer.stage.adapt_init(weights, trainer.model)
    assert "refiner.out.weight" not in kept and kept.keys() == source.state_dict().keys()


def test_without_critic_terms_no_discriminator_is_trained(tmp_path):
    preset = dataclasses.replace(
        get_preset("vae-gan-tiny"), steps=2, adversarial_weight=0.0, feature_weight=0.0
    )
    trainer = Trainer(preset, tmp_path / "plain")
    before = [p.clone() for p in trainer.stage.discriminator.parameters()]
    decoder_before = trainer.model.dec_out.conv.weight.clone()
    trainer.run(progress=False, validate=False)
    assert all(
        torch.equal(a, b) for a, b in zip(before, trainer.stage.discriminator.parameters(), strict=True)
    )
    assert not torch.equal(decoder_before, trainer.model.dec_out.conv.weight)
