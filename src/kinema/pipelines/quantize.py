"""Dynamic int8 quantisation of kinema's DiT for CPU inference.

The DiT's cost is almost all Linear layers (attention projections, MLPs, modulation).
Dynamic quantisation stores their weights as int8 and quantises activations on the fly,
so weights take a quarter of the memory and matmuls run through int8 kernels; no
calibration data is needed, which is why it suits a model loaded from a folder.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from kinema.errors import InputError


def quantize_int8(module: nn.Module, device: str = "cpu") -> nn.Module:
    """A copy of `module` whose nn.Linear layers compute in dynamic int8 (qint8 weights).

    Refuses any device but the CPU: PyTorch's dynamically quantised kernels (fbgemm,
    qnnpack) run only there.
    """
    if device != "cpu":
        raise InputError(f"int8 quantises for CPU inference; it cannot run on device {device}")
    if not torch.backends.quantized.supported_engines or torch.backends.quantized.engine == "none":
        raise InputError("int8: this PyTorch build has no quantised CPU engine (fbgemm or qnnpack)")
    with warnings.catch_warnings():
        # torch.ao's eager quantisation warns that its future is torchao; it is still the one
        # int8 path in this PyTorch and the warnings would end up on every user's terminal
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=False)
