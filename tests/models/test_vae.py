import pytest
import torch

from kinema.models.vae import VAEConfig, VideoVAE


def _tiny():
    torch.manual_seed(0)
    return VideoVAE(VAEConfig(channels=(16, 16), latent_channels=4))


@pytest.mark.parametrize("frames", [1, 5, 9, 17])
def test_shapes_for_any_1_plus_4k(frames):
    vae = _tiny().eval()
    x = torch.rand(2, 3, frames, 32, 48) * 2 - 1
    z = vae.encode(x)
    assert z.shape == (2, 4, 1 + (frames - 1) // 4, 4, 6) == (2, *vae.latent_shape(frames, 32, 48))
    assert vae.decode(z).shape == x.shape


def test_refuses_lengths_and_sizes_it_cannot_take():
    vae = _tiny()
    with pytest.raises(ValueError, match="1\\+4k"):
        vae.encode(torch.zeros(1, 3, 16, 32, 32))
    with pytest.raises(ValueError, match="divisible by 8"):
        vae.encode(torch.zeros(1, 3, 5, 30, 32))


def test_encoding_is_causal():
    vae = _tiny().eval()
    x = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    y = x.clone()
    y[:, :, 5:] = 0  # change only the future of latent frame 1 (pixel frames 1-4)
    with torch.no_grad():
        zx, zy = vae.encode(x), vae.encode(y)
    assert torch.allclose(zx[:, :, :2], zy[:, :, :2], atol=1e-6)
    assert not torch.allclose(zx[:, :, 2], zy[:, :, 2])


def test_chunked_decode_equals_whole_decode():
    vae = _tiny().eval()
    z = torch.randn(1, 4, 6, 4, 4)
    with torch.no_grad():
        whole, chunked = vae.decode(z, chunked=False), vae.decode(z, chunked=True)
    assert whole.shape[2] == 21
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_frames_major_decoding_computes_the_same_decoder():
    vae = _tiny().eval()
    z = torch.randn(2, 4, 4, 4, 4)
    with torch.no_grad():
        assert torch.allclose(vae.decode_frames(z), vae.decode_raw(z), atol=1e-5)
        vae.dec_in.conv.weight.mul_(1.5)  # a changed weight: its 2-D form is made again
        assert torch.allclose(vae.decode_frames(z), vae.decode_raw(z), atol=1e-5)
    z.requires_grad_()
    vae.decode_frames(z).square().mean().backward()  # differentiable, outside the cache
    assert z.grad is not None and vae.dec_out.conv.weight.grad is not None


def test_a_doubled_frame_convolution_is_nearest_upsampling_then_the_convolution():
    from kinema.models.vae import CausalConv3d

    torch.manual_seed(1)
    conv = CausalConv3d(5, 7)
    x = torch.randn(2, 4, 5, 3, 6)  # frames-major (B, T, C, H, W), H and W unequal
    up = torch.nn.functional.interpolate(x.flatten(0, 1), scale_factor=2, mode="nearest").view(2, 4, 5, 6, 12)
    with torch.no_grad():
        assert torch.allclose(conv.forward_frames_doubled(x), conv.forward_frames(up), atol=1e-5)


def test_frames_major_decoding_of_a_vae_built_under_inference_mode():
    with torch.inference_mode():  # its weights are inference tensors: no version to key a cache on
        vae = _tiny().eval()
        z = torch.randn(1, 4, 3, 4, 4)
        assert torch.allclose(vae.decode(z), vae.decode_raw(z).clamp(-1, 1), atol=1e-5)


def test_a_few_steps_reduce_the_reconstruction_loss():
    vae = _tiny()
    x = torch.zeros(2, 3, 5, 16, 16) - 1
    x[:, 0, :, 4:10, 4:10] = 1
    opt = torch.optim.Adam(vae.parameters(), 3e-3)
    losses = []
    for _ in range(25):
        recon, kl = vae(x)
        loss = (recon - x).abs().mean() + 1e-6 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_a_refiner_starts_as_the_identity_and_decodes_chunked_like_whole():
    plain = _tiny().eval()
    torch.manual_seed(1)
    refined = VideoVAE(VAEConfig(channels=(16, 16), latent_channels=4, refiner=(8, 8)))
    missing = refined.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("refiner.") for k in missing)
    refined.eval()
    z = torch.randn(1, 4, 3, 4, 4)
    with torch.no_grad():
        assert torch.equal(refined.decode(z), plain.decode(z))  # the zero last layer adds nothing
        torch.nn.init.normal_(refined.refiner.out.weight, std=0.1)
        changed = refined.decode(z)
        assert not torch.allclose(changed, plain.decode(z))
        assert torch.allclose(changed, refined.decode(z, chunked=True), atol=1e-5)
        assert torch.equal(refined.decode_pictures(z, None), plain.decode(z))
    assert VAEConfig.from_dict(refined.config.to_dict()) == refined.config


def test_short_clips_decode_at_once_and_long_ones_chunk_by_chunk(monkeypatch):
    from kinema.models import vae as vae_module

    vae = _tiny().eval()
    calls = []
    real, real_frames = vae.decode_raw, vae.decode_frames
    monkeypatch.setattr(vae, "decode_raw", lambda z, **k: calls.append(z.shape[2]) or real(z, **k))
    monkeypatch.setattr(vae, "decode_frames", lambda z: calls.append(z.shape[2]) or real_frames(z))
    with torch.no_grad():
        vae.decode(torch.randn(1, 4, 5, 4, 4))  # 80 cells: at once
        assert calls == [5]
        calls.clear()
        monkeypatch.setattr(vae_module, "WHOLE_DECODE_CELLS", 40)
        vae.decode(torch.randn(1, 4, 5, 4, 4))  # over the budget: one latent frame at a time
        assert calls == [1, 1, 1, 1, 1]
