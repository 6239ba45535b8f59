"""The request layer: every door (command line, web worker, batch, storyboard, Python API)
describes a clip as one ClipRequest, checks it once and renders it with one function.

    door ─► ClipRequest ─► check(request, facts) ─► Checked ─► render(pipe, checked) ─► Rendered
                                 (no weights)                      (the loaded model)      │
                                                                                  publish ◄┘

`check` does every validation a request needs: ranges, the modes and sizes the model
serves (its facts, read from the model folder's JSON), the prompt screen, the input
files and the likeness check of every input image or clip. The web runs it before
queueing and the command line before loading a model; `render` runs only a Checked
request, so nothing is rendered unchecked. The same request gives the same pixels and
the same settings record from every door.
"""

from kinema.render.check import Checked, Inputs, check, check_adapters, check_size, fast_adapter, fast_steps
from kinema.render.handle import Model
from kinema.render.make import Rendered, render, settings_record
from kinema.render.request import (
    EDITS,
    MODES,
    Adapter,
    ClipRequest,
    Narration,
    max_frames,
    parse_adapter,
    parse_sides,
    parse_size,
    request_from_dict,
    request_to_dict,
)

__all__ = [
    "check_adapters",
    "fast_adapter",
    "fast_steps",
    "EDITS",
    "MODES",
    "Adapter",
    "Checked",
    "ClipRequest",
    "Inputs",
    "Model",
    "Narration",
    "Rendered",
    "check",
    "check_size",
    "max_frames",
    "parse_adapter",
    "parse_sides",
    "parse_size",
    "render",
    "request_from_dict",
    "request_to_dict",
    "settings_record",
]
