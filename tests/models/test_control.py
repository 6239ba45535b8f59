import torch

from kinema.models.control import ControlBranch, ControlConfig, Steering, signal_tokens
from kinema.models.dit import DiT, DiTConfig

CONFIG = DiTConfig(latent_channels=4, width=48, depth=3, heads=2, text_dim=16)


def _inputs():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 2, 4, 4)  # 2 latent frames of 4x4: 2x2 tokens each
    text = torch.randn(2, 3, 16)
    return x, torch.tensor([0.3, 0.8]), text


def _dit() -> DiT:
    torch.manual_seed(1)
    dit = DiT(CONFIG)
    for p in dit.parameters():  # adaLN-Zero starts as the identity: give every weight a value
        torch.nn.init.normal_(p, std=0.05)
    return dit.eval()


def _signal(batch: int = 1) -> torch.Tensor:
    # 5 frames (1 + 4) of 32x32 px: 2 latent frames, a 16-px cell per token
    masks = torch.rand(batch, 5, 32, 32)
    return signal_tokens(masks, temporal=4, cell=16)


def test_an_untrained_branch_leaves_the_dit_exactly_as_it_was():
    dit = _dit()
    branch = ControlBranch.from_dit(dit, ControlConfig(depth=2, cell=16))
    x, t, text = _inputs()
    with torch.no_grad():
        base = dit(x, t, text)
        steered = dit(x, t, text, control=Steering(branch, _signal(), 2.0))
    assert torch.equal(base, steered)
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            branch.blocks[1].state_dict().values(), dit.blocks[1].state_dict().values(), strict=True
        )
    )


def test_a_trained_branch_steers_and_scale_zero_does_not():
    dit = _dit()
    branch = ControlBranch.from_dit(dit, ControlConfig(depth=2, cell=16))
    for layer in (branch.embed, *branch.outs):
        torch.nn.init.normal_(layer.weight, std=0.05)
    x, t, text = _inputs()
    with torch.no_grad():
        base = dit(x, t, text)
        steered = dit(x, t, text, control=Steering(branch, _signal(), 1.0))
        off = dit(x, t, text, control=Steering(branch, _signal(), 0.0))
    assert (steered - base).abs().max() > 1e-3
    assert torch.allclose(off, base, atol=1e-6)


def test_the_signal_rows_follow_the_dits_token_order():
    masks = torch.zeros(1, 5, 32, 32)
    masks[0, 4, 20, 3] = 1  # frame 4 (latent frame 1), row 20 (token row 1), column 3 (token column 0)
    rows = signal_tokens(masks, temporal=4, cell=16)
    assert rows.shape == (1, 2, 4, 4 * 16 * 16)
    hot = (rows[0] > 0).nonzero().tolist()
    assert [h[:2] for h in hot] == [[1, 2]]  # latent frame 1, token 1 * 2 + 0
    first = torch.zeros(1, 5, 32, 32)
    first[0, 0] = 1  # frame 0 stands for the whole of latent frame 0
    assert torch.all(signal_tokens(first, 4, 16)[0, 0] == 1)


def test_a_window_of_the_steering_covers_its_latent_frames():
    dit = _dit()
    branch = ControlBranch.from_dit(dit, ControlConfig(depth=1, cell=16))
    steering = Steering(branch, _signal(), 1.0)
    assert steering.window(1, 2).signal.shape == (1, 1, 4, 1024)
    x, t, text = _inputs()
    with torch.no_grad():
        dit(x[:, :, :1], t, text, control=steering.window(0, 1))  # one latent frame, its rows
