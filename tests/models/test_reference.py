import torch

from kinema.models.dit import DiT, DiTConfig
from kinema.models.reference import ReferenceBranch, ReferenceConfig, Referencing

CONFIG = DiTConfig(latent_channels=4, width=48, depth=4, heads=2, text_dim=16)
BRANCH = ReferenceConfig(latent_channels=4, patch=2, hidden=32, words=3, heads=2)


def _dit() -> DiT:
    torch.manual_seed(1)
    dit = DiT(CONFIG)
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return dit.eval()


def _inputs():
    torch.manual_seed(0)
    return torch.randn(2, 4, 2, 4, 4), torch.tensor([0.3, 0.8]), torch.randn(2, 3, 16)


def _reference(batch: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A reference's latents (B, 4, 1, h, w) and pixels (B, 3, 8h, 8w)."""
    return torch.randn(batch, 4, 1, h, w), torch.rand(batch, 3, 8 * h, 8 * w) * 2 - 1


def _opened(branch: ReferenceBranch) -> ReferenceBranch:
    with torch.no_grad():
        branch.gates.normal_(std=0.05)
        branch.pool_gate.fill_(0.02)
    return branch


def test_an_image_becomes_pseudo_words_in_the_text_encoders_space_at_any_size():
    branch = ReferenceBranch(BRANCH, CONFIG)
    assert branch.tokens(*_reference(2, 6, 6)).shape == (2, 3, 16)
    assert branch.tokens(*_reference(1, 5, 7)).shape == (1, 3, 16)  # odd sizes are padded


def test_an_untrained_reference_branch_leaves_the_dit_exactly_as_it_was():
    dit = _dit()
    branch = ReferenceBranch(BRANCH, CONFIG)
    tokens = branch.tokens(*_reference(1, 6, 6))
    x, t, text = _inputs()
    with torch.no_grad():
        assert torch.equal(dit(x, t, text), dit(x, t, text, reference=Referencing(branch, tokens)))


def test_a_trained_reference_steers_every_cross_attention_and_scale_zero_does_not():
    dit = _dit()
    branch = _opened(ReferenceBranch(BRANCH, CONFIG))
    tokens = branch.tokens(*_reference(1, 4, 4))
    x, t, text = _inputs()
    with torch.no_grad():
        base = dit(x, t, text)
        steered = dit(x, t, text, reference=Referencing(branch, tokens))
        off = dit(x, t, text, reference=Referencing(branch, tokens, scale=0.0))
        rows = dit(x, t, text, reference=Referencing(branch, tokens).rows([1.0, 0.0]))
    assert (steered - base).abs().max() > 1e-3
    assert torch.allclose(off, base, atol=1e-6)
    # classifier-free guidance's rows: the prompt's row steered, the other one untouched
    assert torch.allclose(rows[0], steered[0], atol=1e-6) and torch.allclose(rows[1], base[1], atol=1e-6)


def test_the_reference_reads_through_the_texts_own_projections_and_shares_its_keys():
    dit = _dit()
    branch = _opened(ReferenceBranch(BRANCH, CONFIG))
    _, _, text = _inputs()
    states = dit.text_states(text)
    referencing = Referencing(branch, branch.tokens(*_reference(1, 4, 4)))
    joined = referencing.joined(dit, states)
    assert joined.keys_values is states.keys_values  # the prompt's keys, made once a run
    assert set(joined.reference.weights) == {block.cross for block in dit.blocks}
    assert joined.reference.tokens.shape == (1, 4, 48)  # the DiT's null token, then 3 words
    assert torch.equal(joined.reference.tokens[:, :1], dit.null_text)
    assert not torch.equal(joined.pooled, states.pooled)
    # the reference's own keys and values are made once a run too, shared by every call
    again = referencing.joined(dit, states)
    assert again.reference.keys_values is joined.reference.keys_values
    # no weights of its own for the keys and values: only the DiT's text projections read it
    kv_shape = dit.blocks[0].cross.kv.weight.shape
    assert not any(p.shape == kv_shape for p in branch.parameters())


def test_gradients_reach_the_branch_and_not_the_frozen_dit():
    dit = _dit().requires_grad_(False)
    branch = _opened(ReferenceBranch(BRANCH, CONFIG))
    x, t, text = _inputs()
    out = dit(x, t, text, reference=Referencing(branch, branch.tokens(*_reference(2, 4, 4))))
    out.square().mean().backward()
    assert branch.gates.grad.abs().sum() > 0 and branch.stem[0].weight.grad.abs().sum() > 0
    assert branch.pixel_stem[-1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in dit.parameters())
