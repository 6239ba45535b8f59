"""The Python door: what `kinema.load()` returns.

    model = kinema.load()
    video = model("a red circle moving right on a black background", seed=0)
    video.save("out.mp4")      # signed, sidecar written, pending review: as the CLI does

A Model renders requests through the same check and render as every other door. The
Videos it returns are model output: watermarked when made, and carrying a publisher that
the caller injected (kinema.load passes kinema.publish's), so their `save` publishes them
and io never imports publish. `pipeline` is the loaded pipeline itself, an internal
handle whose Videos are unmarked pixels (for tests of exactness and for training).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from kinema.errors import InputError
from kinema.io import Video
from kinema.pipelines.facts import ModelFacts
from kinema.pipelines.preview import Preview
from kinema.render.check import Checked, check
from kinema.render.make import Rendered, render
from kinema.render.request import ClipRequest, Narration, parse_adapter

Attach = Callable[[Rendered], Video]


class Model:
    """A loaded model behind the request layer; see the module docstring."""

    def __init__(
        self, pipeline, facts: ModelFacts, attach: Attach, model: str | None = None, device: str = "cpu"
    ):
        self.pipeline, self.facts, self._attach = pipeline, facts, attach
        self._base = ClipRequest(prompt="", model=model, device=device)

    @classmethod
    def load(cls, model: str | os.PathLike | None, device: str, attach: Attach, **load_options: Any) -> Model:
        """The model folder MODEL (None: the built-in model) loaded on DEVICE."""
        from kinema.pipelines.loading import load

        name = None if model is None else os.fspath(model)
        return cls(load(name, device, **load_options), ModelFacts.read(name), attach, name, device)

    @property
    def name(self) -> str:
        return self.pipeline.name

    @property
    def model_hash(self) -> str | None:
        return self.pipeline.model_hash

    @property
    def defaults(self) -> dict:
        return self.pipeline.defaults

    def request(self, prompt: str, **options: Any) -> ClipRequest:
        """A ClipRequest for this model; OPTIONS are ClipRequest's fields (paths may be
        strings; narration may be its text), and `lora`: "NAME_OR_FILE[:SCALE]" or a list
        of them, as the command line's --lora (scale 0 leaves one out)."""
        known = set(ClipRequest.__dataclass_fields__) - {"prompt", "model", "device"} | {"lora"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"unknown option '{unknown[0]}' (options: {', '.join(sorted(known))})")
        if "lora" in options:
            lora = options.pop("lora")
            texts = [lora] if isinstance(lora, str) else list(lora or ())
            parsed = tuple(parse_adapter(str(text)) for text in texts)
            options["adapters"] = (*options.get("adapters", ()), *(a for a in parsed if a.scale != 0))
        for name in ("image", "last_image", "source", "mask", "control", "path", "reference"):
            value = options.get(name)
            if isinstance(value, Video):
                raise InputError(f"{name} takes a file path; save the Video first and pass its path")
            if value is not None:
                options[name] = Path(os.fspath(value))
        if isinstance(options.get("narration"), str):
            options["narration"] = Narration(options["narration"])
        for name in ("size", "outpaint"):
            if isinstance(options.get(name), int):
                options[name] = (options[name], options[name])
            elif options.get(name) is not None:
                options[name] = tuple(options[name])
        return replace(self._base, prompt=prompt, **options)

    def render(
        self,
        request: ClipRequest,
        progress: Callable[[int, int], None] | None = None,
        preview: Preview | None = None,
    ) -> Video:
        """Check and render REQUEST; returns the watermarked Video whose save publishes it.
        PROGRESS(step, total) follows the sampler; PREVIEW (kinema.pipelines.preview.Preview)
        is shown the clip as sampled so far every few steps."""
        checked: Checked = check(request, self.facts)
        return self._attach(render(self.pipeline, checked, progress, preview))

    def __call__(self, prompt: str, **options: Any) -> Video:
        """Generate a clip (or a still with still=True); options as ClipRequest's."""
        return self.render(self.request(prompt, **options))

    def extend(self, clip: str | os.PathLike, prompt: str, add_frames: int, **options: Any) -> Video:
        """The clip file CLIP continued by ADD_FRAMES new frames (backward=True: before it)."""
        return self.render(self.request(prompt, mode="extend", source=clip, add_frames=add_frames, **options))

    def remix(self, clip: str | os.PathLike, prompt: str, **options: Any) -> Video:
        """Video-to-video on the clip file CLIP (strength 0 keeps it, 1 ignores it)."""
        return self.render(self.request(prompt, mode="remix", source=clip, **options))

    def inpaint(self, clip: str | os.PathLike, prompt: str, mask: str | os.PathLike, **options: Any) -> Video:
        """Regenerate the white region of the PNG MASK in every frame of CLIP."""
        return self.render(self.request(prompt, mode="inpaint", source=clip, mask=mask, **options))

    def outpaint(
        self, clip: str | os.PathLike, prompt: str, sides: tuple[int, int, int, int], **options: Any
    ) -> Video:
        """Grow CLIP's canvas by SIDES (left, top, right, bottom pixels) and fill it."""
        return self.render(self.request(prompt, mode="outpaint", source=clip, outpaint=sides, **options))
