"""Flow matching (flow.py: interpolation, target, timestep distribution, loss) and samplers
(samplers.py: pure functions of a denoiser). Takes any denoiser; imports no model."""

from kinema.diffusion.flow import flow_loss, interpolate, sample_time, shift_time
from kinema.diffusion.samplers import SAMPLERS, cfg, dpmpp_2m, euler, heun, timesteps, with_conditioning

__all__ = [
    "SAMPLERS",
    "cfg",
    "dpmpp_2m",
    "euler",
    "flow_loss",
    "heun",
    "interpolate",
    "sample_time",
    "shift_time",
    "timesteps",
    "with_conditioning",
]
