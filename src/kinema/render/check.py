"""check(request, facts): every validation a request needs, against the model's facts
(read from its folder's JSON, no weights), and the reading of its input files."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from kinema.errors import InputError
from kinema.io import Video, read_image, read_video
from kinema.pipelines.adapters import AdapterFile, read_adapter
from kinema.pipelines.facts import MAX_SIDE, ModelFacts
from kinema.pipelines.motion_track import (
    MotionTrack,
    check_one_object,
    check_path_length,
    read_path,
    track_of_clip,
    track_of_path,
)
from kinema.render.request import EDITS, MODES, NEEDS, TAKES, Adapter, ClipRequest, Narration, max_frames

if TYPE_CHECKING:
    from kinema.world.reading import Reading


@dataclass(frozen=True)
class Inputs:
    """A checked request's inputs, read once: images fitted to the clip's size, the source
    clip, the mask region, and the files that go into the manifest as ingredients."""

    first: np.ndarray | None = None
    last: np.ndarray | None = None
    source: Video | None = None
    region: np.ndarray | None = None
    control: Video | None = None  # the control clip's frames that drive the clip, fitted
    track: MotionTrack | None = None  # a control's or a path's track (kinema's own models)
    reference: np.ndarray | None = None  # the reference image, fitted to the clip's size
    adapters: tuple[AdapterFile, ...] = ()  # scale 0 dropped: the base model's output
    notes: tuple[str, ...] = ()  # what was done to fit an input (printed by the CLI)

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self.source is None else (self.source.width, self.source.height)


@dataclass(frozen=True)
class Checked:
    """A request that passed check(): seed drawn, defaults that depend on the mode filled
    in, and its inputs read. Only a Checked request renders.

    For a shapes-world model the prompt was read (kinema.render.reading): `reading` holds
    what was typed, what was understood and the warnings, and `request.prompt` is what
    the model is given (the understood prompt; the typed one when nothing in the world
    was found, or with `literal`)."""

    request: ClipRequest
    inputs: Inputs = field(default_factory=Inputs)
    reading: Reading | None = None

    @property
    def typed_prompt(self) -> str:
        """The prompt as the user typed it (stripped)."""
        return self.request.prompt if self.reading is None else self.reading.typed

    @property
    def understood_prompt(self) -> str | None:
        """The world's canonical form of the prompt, None when it was not read or nothing
        in the world was found."""
        return None if self.reading is None else self.reading.understood

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line each: words the model does not know, scenes it cannot draw."""
        return () if self.reading is None else self.reading.warnings

    def with_seed(self, seed: int) -> Checked:
        """The same checked request with another seed (best-of takes, storyboard retakes):
        the seed is the one option check has nothing to say about beyond its range."""
        if not 0 <= seed < 2**63:
            raise InputError(f"seed must be between 0 and 2**63 - 1, got {seed}")
        return replace(self, request=replace(self.request, seed=seed))


# ---------------------------------------------------------------------- check


def check(request: ClipRequest, facts: ModelFacts, *, first: np.ndarray | None = None) -> Checked:
    """Validate REQUEST against the model's FACTS and read its inputs; returns the Checked
    request (seed drawn when not given, a loop's or still's length filled in). FIRST is a
    first frame already in memory instead of an image file (a storyboard shot continuing
    the one before: that frame is the model's own output, already checked).

    A shapes-world model's prompt is read into the world's words (unless `literal`): the
    Checked request carries the understood prompt, and `reading` what was typed and the
    warnings (words the model does not know); the prompt is never refused for them.

    Refuses (InputError, one line naming the option) anything the request, the mode or the
    model cannot do: empty or screened prompts, values out of range, options another mode
    takes, sizes and lengths the model does not make, missing or unreadable files, masks
    that are not black and white at the clip's size, and any input image or clip that
    shows a face without a consent record.
    """
    from kinema.governance.policy import screen_prompt

    r = request
    if r.mode not in MODES:
        raise InputError(f"unknown mode '{r.mode}': choose one of {', '.join(MODES)}")
    prompt, negative = str(r.prompt).strip(), str(r.negative or "").strip()
    if not prompt:
        what = "the whole scene after the edit" if r.mode in EDITS else "what the clip should show"
        raise InputError(f"empty prompt: describe {what}")
    screen_prompt(prompt)
    if negative:
        screen_prompt(negative)
    _check_options_for_mode(r)
    _check_ranges(r)
    _check_steering(r, facts)
    adapters = check_adapters(r.adapters, facts)
    if r.fast:
        if r.int8:
            raise InputError(
                "int8 and fast do not combine (the few-step adapter mixes into the fp32 weights); drop int8"
            )
        fast = fast_adapter(facts)
        adapters = (*adapters, fast)
        # the adapter runs at its own step count and without guidance (distilled into it),
        # unless the request says otherwise
        r = replace(
            r,
            steps=fast_steps(fast) if r.steps is None else r.steps,
            guidance=1.0 if r.guidance is None else r.guidance,
        )
    if adapters and r.int8:
        raise InputError("int8 and adapters do not combine (adapters mix into the fp32 weights); drop int8")
    if first is not None and (r.mode != "generate" or r.image is not None):
        raise InputError("a first frame in memory is for a generated clip without an image")
    kind = "i2v" if first is not None and r.kind == "t2v" else r.kind
    if kind not in facts.modes:
        served = ", ".join(m for m in facts.modes)
        serves = f"it serves {served}" if served else "kinema runs none of its modes yet"
        raise InputError(f"the model {facts.name} does not do {MODE_WORDS[kind]}; {serves}")
    seed = secrets.randbelow(2**31) if r.seed is None else r.seed
    r = replace(r, prompt=prompt, negative=negative, seed=seed)
    if r.control_scale == 0:  # as an adapter at scale 0: dropped, the base model's clip
        r = replace(r, control=None, path=None)
    reading = _read(r, facts)
    if reading is not None and reading.understood is not None:
        r = replace(r, prompt=reading.understood)
    if r.mode == "generate":
        r = _check_generate(r, facts)
        _check_controlled_prompt(r, reading)
    if r.narration is not None:
        _check_narration(r.narration)
    inputs = _read_inputs(r, facts, reading)
    if adapters:
        inputs = replace(inputs, adapters=adapters)
    if first is not None:
        inputs = _first_frame(inputs, first, r, facts)
    return Checked(r, inputs, reading)


def check_adapters(adapters: Sequence[Adapter], facts: ModelFacts) -> tuple[AdapterFile, ...]:
    """The adapter files ADAPTERS name, read and checked against the model's FACTS (for
    kinema's own models: keys, shapes and the DiT they were trained on); adapters at
    scale 0 are dropped (the output is the base model's, file for file)."""
    files = tuple(read_adapter(a.source, a.scale) for a in adapters if a.scale != 0)
    if files and facts.own and facts.folder is not None:
        from kinema.pipelines.lora import check_fits_folder

        for adapter in files:
            check_fits_folder(adapter, facts.folder, facts.name or "this model")
    return files


def fast_adapter(facts: ModelFacts) -> AdapterFile:
    """The few-step adapter a kinema model ships (FOLDER/fast/fast.safetensors), checked
    against the model's DiT as any adapter is."""
    from kinema.pipelines.facts import FAST_ADAPTER
    from kinema.pipelines.lora import check_fits_folder

    if "fast" not in facts.adapters or facts.folder is None:
        raise InputError(f"{facts.name or 'this model'} has no few-step adapter for fast")
    fast = read_adapter(str(facts.folder / FAST_ADAPTER))
    check_fits_folder(fast, facts.folder, facts.name or "this model")
    return fast


def fast_steps(fast: AdapterFile) -> int:
    """The step count the few-step adapter was distilled for (its card's fast_steps)."""
    return int((fast.metadata.get("card") or {}).get("fast_steps", 4))


def _read(r: ClipRequest, facts: ModelFacts) -> Reading | None:
    from kinema.render.reading import read_request

    return read_request(r, facts)


def _first_frame(inputs: Inputs, first: np.ndarray, r: ClipRequest, facts: ModelFacts) -> Inputs:
    from kinema.pipelines.conditioning import fit_image

    default = facts.default("size", first.shape[1])
    width, height = r.size or (default, default)
    fitted, _ = fit_image(np.asarray(first, np.uint8), width, height)
    return replace(inputs, first=fitted)


# What each pipeline mode is, in a refusal's words.
MODE_WORDS = {
    "t2v": "text to video without a first image (t2v)",
    "i2v": "image to video from a first image (i2v)",
    "keyframes": "keyframes: a last image (keyframes)",
    "loop": "loops (loop)",
    "extend": "extend",
    "remix": "remix",
    "inpaint": "inpaint",
    "outpaint": "outpaint",
}


def _check_options_for_mode(r: ClipRequest) -> None:
    optional = {name for names in TAKES.values() for name in names}
    for name in sorted(optional):
        value = getattr(r, name)
        if value not in (None, False) and name not in TAKES[r.mode]:
            takers = [m for m, names in TAKES.items() if name in names]
            raise InputError(f"{name} is for {' or '.join(takers)}, not {r.mode}")
    for name in NEEDS.get(r.mode, ()):
        if getattr(r, name) is None:
            raise InputError(f"{r.mode} needs {name}")


def _check_ranges(r: ClipRequest) -> None:
    limit = max_frames()
    if r.seed is not None and not 0 <= r.seed < 2**63:
        raise InputError(f"seed must be between 0 and 2**63 - 1, got {r.seed}")
    if r.frames is not None and not 1 <= r.frames <= limit:
        raise InputError(f"frames must be between 1 and {limit}, got {r.frames}")
    if r.add_frames is not None and not 1 <= r.add_frames <= limit:
        raise InputError(f"add_frames must be between 1 and {limit}, got {r.add_frames}")
    if r.steps is not None and not 1 <= r.steps <= 1000:
        raise InputError(f"steps must be between 1 and 1000, got {r.steps}")
    if r.guidance is not None and not 0 <= r.guidance <= 50:
        raise InputError(f"guidance must be between 0 and 50, got {r.guidance}")
    if r.fps is not None and not 0 < r.fps <= 240:
        raise InputError(f"fps must be in (0, 240], got {r.fps}")
    if r.strength is not None and not 0 <= r.strength <= 1:
        raise InputError(f"strength must be between 0 and 1, got {r.strength}")
    if r.outpaint is not None and (min(r.outpaint) < 0 or sum(r.outpaint) == 0 or len(r.outpaint) != 4):
        raise InputError("outpaint takes four non-negative pixel counts L,T,R,B, not all zero")
    if r.size is not None and min(r.size) < 1:
        raise InputError(f"size must be positive, got {r.size[0]}x{r.size[1]}")
    if not 0 <= r.control_scale <= 2:
        raise InputError(f"control_scale must be between 0 and 2, got {r.control_scale}")


def _check_steering(r: ClipRequest, facts: ModelFacts) -> None:
    """Adapters, controls and references act through trained branches; a model that ships
    none refuses them rather than ignoring them."""
    name = facts.name or "this model"
    for adapter in r.adapters:
        if not -2 <= adapter.scale <= 2:
            raise InputError(f"adapter {adapter.source}: scale must be between -2 and 2, got {adapter.scale}")
    if any(a.scale != 0 for a in r.adapters) and not facts.adapters:
        raise InputError(f"{name} cannot load LoRA adapters")
    if r.control is not None and r.path is not None:
        raise InputError("control and path both move the object; give one of them")
    if r.loop and (r.control is not None or r.path is not None):
        raise InputError(
            f"a loop returns to its start by itself; it takes no {'path' if r.path else 'control'}"
        )
    for option in ("control", "path", "reference"):
        if getattr(r, option) is not None and r.mode != "generate":
            raise InputError(f"{option} steers a generated clip (generate, storyboard shots), not {r.mode}")
        if getattr(r, option) is not None and option not in facts.controls:
            raise InputError(f"{name} has no {option} branch; {option} cannot steer it")
    if r.fast and "fast" not in facts.adapters:
        raise InputError(f"{name} has no few-step adapter for fast")


def _check_controlled_prompt(r: ClipRequest, reading: Reading | None) -> None:
    """Under a path or a control clip the control decides the motion (and a control clip the
    size): a prompt that says them is refused rather than silently overruled, and so is a
    second object (control v1 moves one; a reference gives one object its look). Judged on
    the objects the world's reader understood."""
    if reading is None or reading.understood is None:
        return
    if r.reference is not None and len(reading.objects) > 1:
        raise InputError("a reference gives one object its look; the prompt names two")
    if r.path is None and r.control is None:
        return
    option = "path" if r.path is not None else "control"
    if len(reading.objects) > 1:
        raise InputError(
            f"{option} moves one object; the prompt names two (control v1 steers one-object scenes)"
        )
    said = reading.objects[0] if reading.objects else {}
    if "motion" in said:
        raise InputError(f"the {option} decides the motion: leave '{said['motion']}' out of the prompt")
    if r.control is not None and "size" in said:
        raise InputError(
            f"the control clip decides the object's size: leave '{said['size']}' out of the prompt"
        )


def _object_extent(r: ClipRequest, reading: Reading | None) -> float:
    """The object's nominal extent by the size the reader understood (WORLD.md's sizes;
    the medium one when none was said), for a path's blob. A prompt sent as typed
    (--literal, a model the reader does not read) is read by the lexicon alone."""
    from kinema.world.reading import read
    from kinema.world.scene import SIZES

    if reading is None:
        reading = read(r.prompt, supplied=("motion",))
    said = reading.objects[0] if reading.objects else {}
    return SIZES[said.get("size")]


def _check_generate(r: ClipRequest, facts: ModelFacts) -> ClipRequest:
    """The length and size rules of a generated clip; returns r with a loop's or a still's
    length filled in."""
    if r.size is not None:
        check_size(*r.size, facts)
    window = facts.default("window", 17)
    if r.still:
        if r.frames not in (None, 1):
            raise InputError(f"a still is one frame; frames {r.frames} is not (drop frames)")
        if r.loop or r.narration is not None:
            raise InputError(f"a still cannot {'loop' if r.loop else 'carry narration'}")
        return replace(r, frames=1)
    if r.loop:
        if r.last_image is not None:
            raise InputError("a loop ends where it starts; it takes no last_image")
        if facts.known and facts.own:  # a diffusers model closes a loop at the length asked
            period = facts.default("loop_period", 30)
            frames = period if r.frames is None else r.frames
            if frames % period:
                nearest = max(period, round(frames / period) * period)
                raise InputError(
                    f"loop makes whole periods of {period} frames; frames {frames} is not (nearest: {nearest})"
                )
            if facts.latent_frames(frames + 1) <= facts.latent_frames(window):
                raise InputError(f"a loop needs more than {window - 1} frames (the model's window)")
            r = replace(r, frames=frames)
    if r.last_image is not None and facts.known and facts.own:
        length = facts.default("frames", 16) if r.frames is None else r.frames
        if facts.latent_frames(length) > facts.latent_frames(window):
            raise InputError(
                f"last_image works up to the model's window of {window} frames; frames is {length}"
            )
    return r


def check_size(width: int, height: int, facts: ModelFacts) -> None:
    """Refuse a size the model does not make, naming the nearest valid one (only the
    loaded pipeline knows a diffusers model's sizes)."""
    f = facts.spatial
    if not facts.known or not facts.own or not f:
        return
    for value, axis in ((width, "width"), (height, "height")):
        if value < f or value % f or value > MAX_SIDE:
            nearest = min(MAX_SIDE, max(f, round(value / f) * f))
            raise InputError(
                f"the model makes sizes that are multiples of {f} up to {MAX_SIDE}; "
                f"{axis} {value} is not (nearest valid: {nearest})"
            )


def _read_control(r: ClipRequest, facts: ModelFacts, width: int, height: int) -> tuple[Video, str]:
    """The control clip's first N frames (N: the clip's length; all of them when only the
    loaded diffusers pipeline knows its default length), each fitted to the clip's size.
    Refuses a control shorter than the clip and one that shows a face without consent."""
    from kinema.governance.policy import check_likeness
    from kinema.pipelines.conditioning import fit_image

    clip = read_video(r.control, max_frames=max_frames() + 1)
    length = r.frames if r.frames is not None else facts.default("frames", 16) if facts.own else None
    if length is not None and clip.num_frames < length:
        raise InputError(
            f"the control clip '{r.control}' has {clip.num_frames} frames; the clip has {length} "
            "(each frame is driven by one control frame: give a longer control or fewer frames)"
        )
    frames = clip.frames[: length or max_frames()]
    check_likeness(frames, source=str(r.control))
    fitted = [fit_image(frame, width, height) for frame in frames]
    note = f"first {len(fitted)} of {clip.num_frames} frames, {fitted[0][1]}"
    return Video(np.stack([f for f, _ in fitted]), clip.fps), note


def _check_narration(narration: Narration) -> None:
    from kinema.voice.profiles import resolve_voice
    from kinema.voice.tts import check_text

    check_text(narration.text)
    resolve_voice(narration.voice, narration.scope)


def _read_inputs(r: ClipRequest, facts: ModelFacts, reading: Reading | None) -> Inputs:
    """Read and policy-check every input file of R."""
    from kinema.governance.policy import check_likeness
    from kinema.pipelines.conditioning import fit_image, mask_region

    if r.mode == "generate":
        default = facts.default("size", 64)
        width, height = r.size or (default, default)
        images, notes = {}, []
        for option in ("image", "last_image", "reference"):
            path = getattr(r, option)
            if path is not None:
                pixels = read_image(path)
                check_likeness(pixels, source=str(path))
                images[option], note = fit_image(pixels, width, height)
                notes.append(f"{option} {path}: {note}")
                if option == "reference" and facts.own:  # kinema's branch takes one object's image
                    check_one_object(images[option], f"the reference '{path}'")
        control, track = None, None
        length = r.frames if r.frames is not None else facts.default("frames", 16)
        if r.control is not None:
            control, note = _read_control(r, facts, width, height)
            notes.append(f"control {r.control}: {note}")
            if facts.own:  # kinema's branch follows the control's object: read it now
                track = track_of_clip(control.frames, source=f"the control clip '{r.control}'")
        if r.path is not None:
            points = read_path(r.path)
            check_path_length(points, length, name=f"the path '{r.path}'")
            track = track_of_path(points, length, _object_extent(r, reading))
        return Inputs(
            images.get("image"),
            images.get("last_image"),
            control=control,
            track=track,
            reference=images.get("reference"),
            notes=tuple(notes),
        )
    source = read_video(r.source, max_frames=max_frames() + 1)
    limit = max_frames()
    if source.num_frames > limit:
        raise InputError(f"the clip '{r.source}' has more than {limit} frames")
    if r.add_frames is not None and source.num_frames + r.add_frames > limit:
        raise InputError(
            f"the clip has {source.num_frames} frames; adding {r.add_frames} passes the limit of {limit}"
        )
    check_likeness(source.frames, source=str(r.source))
    region = None
    if r.mode == "outpaint":
        left, top, right, bottom = r.outpaint
        check_size(source.width + left + right, source.height + top + bottom, facts)
    else:
        check_size(source.width, source.height, facts)
    if r.mode == "inpaint":
        region = mask_region(read_image(r.mask), source.width, source.height, name="the mask")
    return Inputs(source=source, region=region)
