import pytest
import torch

from kinema.diffusion.flow import flow_loss, interpolate, sample_time, shift_time


def test_interpolation_ends_and_velocity():
    x0, noise = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    assert torch.equal(interpolate(x0, noise, torch.zeros(3)), x0)
    assert torch.equal(interpolate(x0, noise, torch.ones(3)), noise)
    t = torch.tensor([0.2, 0.5, 0.9])
    eps = 1e-3
    slope = (interpolate(x0, noise, t + eps) - interpolate(x0, noise, t - eps)) / (2 * eps)
    assert torch.allclose(slope, noise - x0, atol=1e-3)


def test_time_distribution_and_shift():
    g = torch.Generator().manual_seed(0)
    t = sample_time(20000, generator=g)
    assert 0 < t.min() and t.max() < 1 and abs(t.median() - 0.5) < 0.02
    shifted = sample_time(20000, shift=3.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(shifted, shift_time(t, 3.0)) and shifted.median() > 0.7  # towards noise
    assert sample_time(20000, mean=1.0, generator=g).median() > 0.7
    grid = torch.linspace(0, 1, 11)
    assert torch.equal(shift_time(grid, 1.0), grid)
    assert shift_time(grid, 3.0)[0] == 0 and shift_time(grid, 3.0)[-1] == 1


def test_loss_is_zero_for_the_exact_velocity_and_weight_excludes_elements():
    x0, noise = torch.randn(2, 8, 3, 4, 4), torch.randn(2, 8, 3, 4, 4)
    t = torch.tensor([0.3, 0.6])

    def exact(x, t):
        return noise - x0

    assert flow_loss(exact, x0, t=t, noise=noise) == 0
    assert flow_loss(lambda x, t: torch.zeros_like(x), x0, t=t, noise=noise) == pytest.approx(
        (noise - x0).square().mean().item()
    )

    def wrong_on_frame_0(x, t):
        v = (noise - x0).clone()
        v[:, :, 0] += 100
        return v

    weight = torch.ones(2, 1, 3, 1, 1)
    weight[:, :, 0] = 0  # frame 0 is a conditioning frame
    assert flow_loss(wrong_on_frame_0, x0, t=t, noise=noise, weight=weight) == 0
    assert flow_loss(wrong_on_frame_0, x0, t=t, noise=noise) > 1000


def test_loss_draws_t_and_noise_reproducibly_and_trains():
    torch.manual_seed(0)
    x0 = torch.randn(16, 4)
    model = torch.nn.Linear(5, 4)

    def model_fn(x, t):
        return model(torch.cat([x, t[:, None]], 1))

    a = flow_loss(model_fn, x0, generator=torch.Generator().manual_seed(1))
    b = flow_loss(model_fn, x0, generator=torch.Generator().manual_seed(1))
    assert a == b
    a.backward()
    assert model.weight.grad.abs().sum() > 0
