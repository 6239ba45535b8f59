import dataclasses
import json

import pytest
import torch

from kinema.diffusion.flow import flow_loss
from kinema.models.dit import (
    DiT,
    DiTConfig,
    Rotary,
    TanhGELU,
    TextStates,
    deepen,
    rms_normalize,
    rope_angles,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors gain nothing from a second thread, and lose much when a core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**overrides) -> DiT:
    torch.manual_seed(0)
    return DiT(DiTConfig(width=32, depth=2, heads=2, text_dim=16, **overrides))


def text(batch=2, length=5):
    return torch.randn(batch, length, 16), torch.ones(batch, length, dtype=torch.bool)


def perturb(model: DiT) -> DiT:
    """Give the zero-initialised layers values, as training would."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("shape", [(2, 8, 5, 8, 8), (2, 8, 1, 4, 4), (1, 8, 3, 6, 10), (2, 8, 2, 5, 7)])
@pytest.mark.parametrize("patch", [(1, 2, 2), (1, 1, 1), (2, 2, 2)])
def test_any_size_and_length_runs_and_starts_at_zero(shape, patch):
    model = tiny(patch=patch)
    x = torch.randn(shape)
    tokens, mask = text(shape[0])
    v = model(x, torch.rand(shape[0]), tokens, mask)
    assert v.shape == x.shape and torch.equal(v, torch.zeros_like(v))  # zero-initialised output
    v = perturb(model)(x, 0.5, tokens, mask)
    assert v.shape == x.shape and torch.isfinite(v).all() and v.abs().sum() > 0


def test_rope_depends_only_on_relative_position():
    assert rope_angles((4, 5, 6), head_dim=12, theta=10000.0).shape == (120, 6)
    rotary = Rotary((4, 5, 6), head_dim=12, theta=10000.0)
    q, k = torch.randn(12), torch.randn(12)
    qk = torch.stack((q, k))[None, None, :, None].expand(1, 120, 2, 1, 12)  # (B, N, q|k, heads, head_dim)
    weight = torch.ones(2, 1, 12)
    q_rot, k_rot = rotary.rotate(qk, weight)[0, :, :, 0].unbind(1)
    grid = torch.arange(120).reshape(4, 5, 6)
    # the same (dt, dh, dw) offset from two different places gives the same score
    a = q_rot[grid[0, 0, 0]] @ k_rot[grid[1, 2, 3]]
    b = q_rot[grid[2, 1, 2]] @ k_rot[grid[3, 3, 5]]
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, q_rot[grid[0, 0, 0]] @ k_rot[grid[1, 2, 4]], atol=1e-3)


def test_rotary_turns_each_pair_by_its_angle_after_the_weight():
    angles = rope_angles((2, 3, 3), head_dim=12, theta=10000.0)  # (18, 6)
    x, weight = torch.randn(1, 18, 2, 3, 12), torch.rand(2, 1, 12) + 0.5
    turned = Rotary((2, 3, 3), head_dim=12, theta=10000.0).rotate(x, weight)
    a, b = (x * weight).unflatten(-1, (6, 2)).unbind(-1)
    cos, sin = angles.cos()[:, None, None], angles.sin()[:, None, None]
    expected = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    assert torch.allclose(turned, expected, atol=1e-6)


def test_fast_forms_compute_the_trained_functions():
    x = torch.randn(3, 7, 64) * 3
    assert torch.allclose(rms_normalize(x, 1e-6), torch.nn.functional.rms_norm(x, (64,), eps=1e-6), atol=1e-6)
    with torch.no_grad():  # the in-place sigmoid form
        assert torch.allclose(TanhGELU()(x), torch.nn.functional.gelu(x, approximate="tanh"), atol=1e-6)
    y = x.clone().requires_grad_()
    TanhGELU()(y).sum().backward()  # with autograd: torch's own op
    assert y.grad is not None and torch.isfinite(y.grad).all()


def test_cross_attention_with_the_query_weight_on_the_keys_is_plain_attention():
    cross = perturb(tiny()).blocks[0].cross
    x, tokens = torch.randn(2, 6, 32), torch.randn(2, 4, 32)
    with torch.no_grad():
        cross.q_norm.weight.uniform_(0.5, 1.5)
        states = TextStates(tokens, torch.zeros(2, 1, 1, 4), tokens.mean(1))
        k, v = cross.kv(tokens).view(2, 4, 2, 2, 16).unbind(2)
        q = cross.q(x).view(2, 6, 2, 16)
        plain = torch.nn.functional.scaled_dot_product_attention(
            cross.q_norm(q).transpose(1, 2), cross.k_norm(k).transpose(1, 2), v.transpose(1, 2)
        )
        expected = cross.out(plain.transpose(1, 2).reshape(2, 6, 32))
        assert torch.allclose(cross(x, states), expected, atol=1e-5)


def test_folded_cross_attention_is_attention_per_head_then_the_projection():
    """The folded path (keys block-diagonal over the heads, values through W_out) against
    the per-head path that a peft-wrapped or int8 output projection takes."""

    class Wrapped(torch.nn.Module):  # not a plain nn.Linear: sends forward per head
        def __init__(self, linear):
            super().__init__()
            self.linear = linear

        def forward(self, x):
            return self.linear(x)

    model = perturb(tiny())
    x, (tokens, mask) = torch.randn(2, 7, 32), text(2)
    mask[1, 2:] = False  # padded keys get no weight on either path
    with torch.no_grad():
        for cross in (block.cross for block in model.blocks):
            states = model.text_states(tokens, mask)
            folded = cross(x, states)
            cross.out = Wrapped(cross.out)
            assert torch.allclose(cross(x, states), folded, atol=1e-5)
            assert cross in states.folded and len(states.folded) == 1
            cross.out = cross.out.linear
        # a one-row prompt's states serve a wider batch
        one = model.text_states(tokens[:1], mask[:1])
        cross = model.blocks[0].cross
        assert torch.allclose(cross(x, one), cross(x, model.text_states(tokens[:1].expand(2, -1, -1))), atol=1e-5)


def test_text_states_made_once_give_the_same_velocity_as_raw_text():
    model = perturb(tiny())
    x = torch.randn(2, 8, 3, 4, 4)
    tokens, mask = text(2)
    mask[1, 3:] = False  # a padded row: the additive mask must hide its last tokens
    states = model.text_states(tokens, mask)
    with torch.no_grad():
        first = model(x, 0.3, states)
        again = model(x, 0.7, states)  # the cached keys and values serve a second step
        assert torch.allclose(first, model(x, 0.3, tokens, mask), atol=1e-5)
        assert torch.allclose(again, model(x, 0.7, tokens, mask), atol=1e-5)
    assert len(states.keys_values) == len(model.blocks)
    with pytest.raises(ValueError, match="own mask"):
        model(x, 0.3, states, mask)


def test_modulations_made_for_the_schedule_give_the_same_velocity():
    model = perturb(tiny())
    x = torch.randn(2, 8, 3, 4, 4)
    tokens, mask = text(2)
    schedule = torch.linspace(1, 0, 5, dtype=torch.float64)
    states = model.text_states(tokens, mask, times=schedule)
    assert states.times == tuple(schedule.tolist())
    with torch.no_grad():
        for t in schedule.tolist()[:-1]:
            assert torch.allclose(model(x, t, states), model(x, t, tokens, mask), atol=1e-5)
        # made once, for every time of the run, on first use
        assert set(states.modulations) == set(states.times)
        assert len(states.modulations[1.0].blocks) == len(model.blocks)
        # a time off the schedule, or a tensor time, is computed as before
        assert states.modulation_at(model, 0.3) is None
        assert torch.allclose(model(x, 0.3, states), model(x, 0.3, tokens, mask), atol=1e-5)
        tensor_t = torch.tensor([0.75, 0.75])
        assert states.modulation_at(model, tensor_t) is None
        assert torch.allclose(model(x, tensor_t, states), model(x, 0.75, tokens, mask), atol=1e-5)


def test_a_schedule_states_row_serves_a_wider_batch_and_a_changed_pooled_prompt_makes_its_own():
    model = perturb(tiny())
    x = torch.randn(2, 8, 3, 4, 4)
    tokens, mask = text(1)
    states = model.text_states(tokens, mask, times=[0.5])
    with torch.no_grad():
        assert torch.allclose(model(x, 0.5, states), model(x, 0.5, tokens.expand(2, -1, -1)), atol=1e-5)
        # a reference's states (another pooled prompt) never read the prompt's modulations
        joined = dataclasses.replace(states, pooled=states.pooled * 2, reference=object())
        assert joined.modulation_at(model, 0.5) is None


def test_gradients_reach_every_parameter_within_three_steps():
    model = tiny()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x0 = torch.randn(2, 8, 3, 4, 4)
    tokens, mask = text()
    for _ in range(3):
        optimizer.zero_grad()
        loss = flow_loss(lambda x, t: model(x, t, tokens, mask), x0)
        loss.backward()
        optimizer.step()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead


def test_conditioning_changes_the_output_after_a_training_step():
    model = tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x0 = torch.randn(2, 8, 3, 4, 4)
    tokens, mask = text()
    frame_mask = torch.zeros(2, 1, 3, 1, 1)
    frame_mask[:, :, 0] = 1  # first latent frame given
    loss = flow_loss(lambda x, t: model(x, t, tokens, mask, cond=x0, cond_mask=frame_mask), x0)
    loss.backward()
    optimizer.step()
    x, t = torch.randn_like(x0), torch.full((2,), 0.7)
    with torch.no_grad():
        plain = model(x, t, tokens, mask)
        first = model(x, t, tokens, mask, cond=x0, cond_mask=frame_mask)
        region = torch.zeros(2, 1, 3, 4, 4)
        region[..., :2, :] = 1
        inpaint = model(x, t, tokens, mask, cond=x0, cond_mask=region)
        # what is outside the mask is not given, whatever the caller passes there
        other = model(x, t, tokens, mask, cond=x0 + 5 * (1 - frame_mask), cond_mask=frame_mask)
    assert not torch.allclose(plain, first) and not torch.allclose(first, inpaint)
    assert torch.equal(first, other)


def test_padded_text_tokens_are_ignored():
    model = perturb(tiny())
    x, t = torch.randn(2, 8, 2, 4, 4), torch.tensor([0.3, 0.8])
    tokens, mask = text(length=6)
    mask[0, 3:] = False
    mask[1, :] = False  # an all-padding row still works (the null token)
    other = tokens.clone()
    other[0, 3:] = torch.randn(3, 16) * 10
    other[1] = torch.randn(6, 16)
    with torch.no_grad():
        a, b = model(x, t, tokens, mask), model(x, t, other, mask)
        shorter = model(x[:1], t[:1], tokens[:1, :3], mask[:1, :3])
        changed = model(x, t, other, torch.ones_like(mask))
    assert torch.isfinite(a).all()
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a[:1], shorter, atol=1e-5)
    assert not torch.allclose(a, changed, atol=1e-4)


def test_config_round_trips_through_json_and_refuses_bad_shapes():
    config = DiTConfig(width=32, depth=2, heads=2)
    again = DiTConfig(**json.loads(json.dumps(dataclasses.asdict(config))))
    assert again == config and again.patch == (1, 2, 2)
    with pytest.raises(ValueError, match="head size"):
        DiTConfig(width=30, heads=4)
    model = tiny(cond=False)
    assert model.patch_embed.in_features == 8 * 4
    with pytest.raises(ValueError, match="conditioning"):
        model(torch.randn(1, 8, 1, 4, 4), 0.5, *text(1), cond=torch.randn(1, 8, 1, 4, 4))


def test_a_deepened_dit_computes_what_the_shallow_one_did_until_it_trains():
    torch.manual_seed(0)
    shallow = DiT(DiTConfig(width=32, depth=2, heads=2))
    for p in shallow.parameters():  # trained-looking weights: nothing left at zero
        p.data.normal_(0, 0.05)
    deep = DiT(DiTConfig(width=32, depth=3, heads=2))
    deep.load_state_dict(deepen(shallow.state_dict(), deep))
    x, t, text = torch.randn(2, 8, 5, 8, 8), torch.tensor([0.3, 0.7]), torch.randn(2, 4, 384)
    assert torch.allclose(shallow(x, t, text), deep(x, t, text), atol=1e-6)
    # the old blocks keep their order, spread out (8 → 12: the new ones are 2, 5, 8, 11);
    # the new one is fresh and gated shut
    assert torch.equal(deep.blocks[1].attn.qkv.weight, shallow.blocks[1].attn.qkv.weight)
    assert not deep.blocks[2].modulation[-1].weight.any()
    with pytest.raises(ValueError, match="cannot deepen"):
        deepen(deep.state_dict(), shallow)


def test_bf16_autocast_runs_forward_backward_and_the_cached_text_path():
    # the CUDA trainer runs under bf16 autocast; CPU autocast exercises the same dtype mixing
    model = perturb(tiny())
    x = torch.randn(2, 8, 3, 4, 4)
    tokens, mask = text(2)
    mask[1, 3:] = False
    reference = model(x, 0.5, tokens, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, 0.5, tokens, mask)
        out.float().square().mean().backward()
    assert out.dtype == torch.bfloat16 and torch.allclose(out.float(), reference, atol=0.05)
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        cached = model(x, 0.5, model.text_states(tokens, mask))
    assert torch.allclose(cached.float(), reference, atol=0.05)
