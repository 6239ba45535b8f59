"""The Pipeline protocol: kinema's TextToVideo satisfies it (the diffusers backends' check is
in backends/test_backends.py), and resolve_settings fills and refuses settings for both."""

import inspect

import numpy as np
import pytest
import torch

from kinema.errors import InputError
from kinema.models.dit import DiT, DiTConfig
from kinema.models.vae import VAEConfig, VideoVAE
from kinema.pipelines.protocol import MODES, OPTIONS, Pipeline, ResolvedSettings, resolve_settings
from kinema.pipelines.t2v import TextToVideo

DEFAULTS = {"frames": 16, "size": 64, "fps": 8.0, "steps": 24, "guidance": 4.0}


def assert_satisfies(pipe) -> None:
    """pipe is a Pipeline: it has every member (isinstance), each method accepts the
    protocol's positional arguments and every keyword option OPTIONS names for it, and
    its modes are known ones."""
    assert isinstance(pipe, Pipeline)
    for name in ("check_size", "__call__", "extend", "remix", "inpaint", "outpaint"):
        wanted = list(inspect.signature(getattr(Pipeline, name)).parameters.values())[1:]  # not self
        positional = [p.name for p in wanted if p.kind is p.POSITIONAL_OR_KEYWORD]
        keywords = {option: option for option in OPTIONS.get(name, ())}
        signature = inspect.signature(getattr(pipe, name))
        try:
            signature.bind(*positional, **keywords)  # every argument the protocol names
            signature.bind(*positional)  # the options are all optional
        except TypeError as e:
            raise AssertionError(
                f"{type(pipe).__name__}.{name}{signature} does not fit the protocol: {e}"
            ) from e
    assert isinstance(pipe.modes, frozenset) and pipe.modes and pipe.modes <= set(MODES), pipe.modes


class HashingEncoder:
    """A stand-in text encoder: a fixed random embedding per prompt, no model to load."""

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [torch.randn(3, 16, generator=torch.Generator().manual_seed(len(p))) for p in prompts]
        return torch.stack(rows), torch.ones(len(prompts), 3, dtype=torch.bool)


@pytest.fixture(scope="module")
def tiny_pipe():
    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(channels=(16, 16), latent_channels=4))
    dit = DiT(DiTConfig(latent_channels=4, width=32, depth=2, heads=2, text_dim=16))
    return TextToVideo(
        vae, dit, HashingEncoder(), name="tiny", defaults={"frames": 5, "size": 16, "steps": 1}
    )


def test_kinema_pipeline_satisfies_the_protocol_and_serves_every_mode(tiny_pipe):
    assert_satisfies(tiny_pipe)
    assert tiny_pipe.modes == frozenset(MODES)
    pipe: Pipeline = tiny_pipe  # used through the protocol alone, as the layers above use it
    video = pipe("a red circle", seed=1, frames=3, size=(24, 16), fps=12.0)
    assert video.frames.shape == (3, 16, 24, 3) and video.fps == 12.0


def test_a_class_missing_a_member_does_not_satisfy_it(tiny_pipe):
    class NoModes:
        name, model_hash, defaults = "x", None, {}
        check_size = __call__ = extend = remix = inpaint = outpaint = staticmethod(lambda *a, **k: None)

    assert not isinstance(NoModes(), Pipeline)
    NoModes.modes = frozenset({"t2v"})
    assert isinstance(NoModes(), Pipeline)


def test_resolve_settings_takes_what_is_left_out_from_the_defaults():
    assert resolve_settings(DEFAULTS) == ResolvedSettings(16, 64, 64, 24, 4.0, 8.0)
    assert resolve_settings(DEFAULTS, 30, (48, 32), 2, 0.0, 24) == ResolvedSettings(30, 48, 32, 2, 0.0, 24)
    assert resolve_settings(DEFAULTS, size=40).width == resolve_settings(DEFAULTS, size=40).height == 40
    assert resolve_settings({**DEFAULTS, "size": [96, 64]}).width == 96


@pytest.mark.parametrize(
    "given, message",
    [
        ({"frames": 0}, "frames must be at least 1, got 0"),
        ({"steps": 0}, "steps must be at least 1, got 0"),
        ({"guidance": -1.0}, "guidance must not be negative"),
        ({"fps": 0}, "fps must be positive"),
    ],
)
def test_resolve_settings_refuses_out_of_range(given, message):
    with pytest.raises(InputError, match=message):
        resolve_settings(DEFAULTS, **given)


def test_kinema_pipeline_refuses_through_the_shared_resolution(tiny_pipe):
    with pytest.raises(InputError, match="steps must be at least 1"):
        tiny_pipe("x", steps=0)
    with pytest.raises(InputError, match="fps must be positive"):
        tiny_pipe("x", fps=-8)


def test_library_errors_name_options_not_flags(tiny_pipe):
    from kinema.io import Video

    clip = Video(np.zeros((5, 16, 16, 3), np.uint8), 8)
    for call, words in [
        (lambda: tiny_pipe("x", frames=8, loop=True), "loop needs more than"),
        (lambda: tiny_pipe("x", frames=40, last_image=clip.frames[0]), "last_image works up to"),
        (lambda: tiny_pipe.extend(clip, "x", 0), "frames to add must be at least 1"),
        (lambda: tiny_pipe.remix(clip, "x", strength=2), "strength must be between 0 and 1"),
        (lambda: tiny_pipe.outpaint(clip, "x", 0, 0, 0, 0), "outpaint takes four"),
    ]:
        with pytest.raises(InputError, match=words) as info:
            call()
        assert "--" not in str(info.value), info.value
