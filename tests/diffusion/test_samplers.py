import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kinema.diffusion.samplers import (
    SAMPLERS,
    cfg,
    dpmpp_2m,
    euler,
    heun,
    timesteps,
    with_conditioning,
)


def exact_linear_denoiser(data: torch.Tensor):
    """The true velocity of the flow whose data is one fixed tensor: v = (x - x0) / t."""
    return lambda x, t: (x - data) / t


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(SAMPLERS)),
    steps=st.integers(1, 30),
    shift=st.floats(0.5, 8.0),
    seed=st.integers(0, 2**16),
)
def test_every_sampler_returns_the_data_of_an_exact_linear_flow(name, steps, shift, seed):
    g = torch.Generator().manual_seed(seed)
    data, noise = torch.randn(2, 8, 3, 4, 4, generator=g), torch.randn(2, 8, 3, 4, 4, generator=g)
    out = SAMPLERS[name](exact_linear_denoiser(data), noise, timesteps(steps, shift))
    assert out.dtype == torch.float32
    assert torch.allclose(out, data, atol=1e-5, rtol=1e-5)


def test_timesteps_run_from_one_to_zero_and_refuse_zero_steps():
    ts = timesteps(10, shift=3.0)
    assert ts.shape == (11,) and ts[0] == 1 and ts[-1] == 0 and (ts.diff() < 0).all()
    assert ts[5] > 0.5  # shifted towards the noise end
    with pytest.raises(ValueError):
        timesteps(0)


# A 2-D Gaussian mixture: the posterior mean E[x0 | x_t], and so the velocity, is closed form.
MEANS = torch.tensor([[-2.0, -1.0], [2.0, 1.5], [0.5, -2.5]], dtype=torch.float64)
WEIGHTS = torch.tensor([0.3, 0.3, 0.4], dtype=torch.float64)
STD = 0.15


def mixture_velocity(x: torch.Tensor, t: float) -> torch.Tensor:
    var = (1 - t) ** 2 * STD**2 + t**2  # of x_t given the component
    offset = x[:, None] - (1 - t) * MEANS  # (N, K, 2)
    posterior = (WEIGHTS.log() - offset.square().sum(-1) / (2 * var)).softmax(-1)
    x0_given_k = MEANS + (1 - t) * STD**2 / var * offset
    x0 = (posterior[..., None] * x0_given_k).sum(1)
    return (x - x0) / t


@pytest.fixture(scope="module")
def mixture():
    noise = torch.randn(500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return noise, heun(mixture_velocity, noise, timesteps(300))  # error ~1e-4


@pytest.mark.parametrize("steps, shift", [(4, 1.0), (6, 1.0), (8, 3.0)])
def test_higher_order_solvers_beat_euler_on_a_curved_flow(mixture, steps, shift):
    noise, reference = mixture
    ts = timesteps(steps, shift)
    error = {
        f.__name__: (f(mixture_velocity, noise, ts) - reference).norm(dim=1).mean() for f in SAMPLERS.values()
    }
    assert error["heun"] < 0.9 * error["euler"] and error["dpmpp_2m"] < 0.9 * error["euler"], error


def test_second_order_convergence(mixture):
    noise, reference = mixture
    for sampler, order in ((euler, 1), (heun, 2), (dpmpp_2m, 2)):
        e20, e40 = (
            (sampler(mixture_velocity, noise, timesteps(n)) - reference).norm(dim=1).mean() for n in (20, 40)
        )
        # halving the step divides the error by 2 ** order (measured: 1.0, 2.1, 3.0)
        assert math.log2(e20 / e40) > order - 0.3, (sampler.__name__, e20, e40)


def test_callback_sees_every_step():
    seen = []
    data = torch.randn(3)
    dpmpp_2m(exact_linear_denoiser(data), torch.randn(3), timesteps(5), callback=seen.append)
    assert [s["i"] for s in seen] == list(range(5)) and seen[0]["t"] == 1.0
    assert all(torch.allclose(s["denoised"], data, atol=1e-6) for s in seen)


def test_cfg_extrapolates_from_unconditional_in_one_call_and_skips_it_at_scale_one():
    calls = []
    cond = lambda x, t: calls.append("c") or x + 1  # noqa: E731
    both = lambda x, t: calls.append("both") or (x + 1, x * 0)  # noqa: E731
    x = torch.arange(3.0)
    assert torch.equal(cfg(both, cond, 4.0)(x, 0.5), 4.0 * (x + 1)) and calls == ["both"]
    calls.clear()
    assert torch.equal(cfg(both, cond, 1.0)(x, 0.5), x + 1) and calls == ["c"]


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_with_conditioning_lands_on_the_known_latents_and_leaves_the_rest(name):
    g = torch.Generator().manual_seed(0)
    data, known = torch.randn(1, 4, 5, 4, 4, generator=g), torch.randn(1, 4, 5, 4, 4, generator=g)
    noise = torch.randn(1, 4, 5, 4, 4, generator=g)
    mask = torch.zeros(1, 1, 5, 1, 1)
    mask[:, :, 0] = mask[:, :, -1] = 1  # first and last frame given
    denoise = with_conditioning(exact_linear_denoiser(data), known, mask)
    out = SAMPLERS[name](denoise, noise, timesteps(7, 2.0))
    assert torch.allclose(out[:, :, [0, -1]], known[:, :, [0, -1]], atol=1e-5)
    assert torch.allclose(out[:, :, 1:-1], data[:, :, 1:-1], atol=1e-5)
    # the known frames travel the straight path from their noise, as in training
    trace = []
    euler(denoise, noise, timesteps(4), callback=trace.append)
    for step in trace:
        t = step["t"]
        assert torch.allclose(step["x"][:, :, 0], (1 - t) * known[:, :, 0] + t * noise[:, :, 0], atol=1e-5)
