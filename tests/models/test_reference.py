import torch

from kinema.models.dit import DiT, DiTConfig
from kinema.models.reference import ReferenceBranch, ReferenceConfig, Referencing

CONFIG = DiTConfig(latent_channels=4, width=48, depth=4, heads=2, text_dim=16)


def _dit() -> DiT:
    torch.manual_seed(1)
    dit = DiT(CONFIG)
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return dit.eval()


def _inputs():
    torch.manual_seed(0)
    return torch.randn(2, 4, 2, 4, 4), torch.tensor([0.3, 0.8]), torch.randn(2, 3, 16)


def test_an_untrained_reference_branch_leaves_the_dit_exactly_as_it_was():
    dit = _dit()
    branch = ReferenceBranch(ReferenceConfig(latent_channels=4, patch=2, every=3), CONFIG)
    assert len(branch.attend) == 2  # after blocks 0 and 3 of 4
    tokens = branch.tokens(torch.randn(1, 4, 1, 6, 6))
    assert tokens.shape == (1, 9, 48)
    x, t, text = _inputs()
    with torch.no_grad():
        assert torch.equal(dit(x, t, text), dit(x, t, text, reference=Referencing(branch, tokens)))


def test_a_trained_reference_steers_through_c_and_attention_and_scale_zero_does_not():
    dit = _dit()
    branch = ReferenceBranch(ReferenceConfig(latent_channels=4, patch=2, every=3), CONFIG)
    for layer in (branch.pool, *[a.out for a in branch.attend]):
        torch.nn.init.normal_(layer.weight, std=0.05)
    tokens = branch.tokens(torch.randn(1, 4, 1, 4, 4))
    x, t, text = _inputs()
    with torch.no_grad():
        base = dit(x, t, text)
        steered = dit(x, t, text, reference=Referencing(branch, tokens))
        off = dit(x, t, text, reference=Referencing(branch, tokens, scale=0.0))
    assert (steered - base).abs().max() > 1e-3
    assert torch.allclose(off, base, atol=1e-6)
    referencing = Referencing(branch, tokens)
    assert referencing.after(1, x.new_zeros(2, 8, 48)) is None  # only after blocks 0 and 3
    assert referencing.after(3, x.new_zeros(2, 8, 48)).shape == (2, 8, 48)
