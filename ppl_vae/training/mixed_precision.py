"""Mixed precision for training: the networks in bfloat16, every density in float32.

Where is low precision safe for the ELBO? A log-density sums thousands of
per-pixel terms and subtracts numbers of similar size (``log p - log q``); in
bfloat16 (8 bits of mantissa) such a sum loses whole nats. The networks are
different: a matrix product's inputs can be rounded to bfloat16 with a float32
accumulator at no visible cost. So under ``precision="bf16"`` the engine runs
each **network** of the pair (a plain ``nn.Module`` with parameters that hangs
directly off the pair's modules: encoders, decoders, heads) inside
``torch.autocast(dtype=bfloat16)`` and turns its outputs back to float32.
Everything Pyro sees (distribution parameters, draws, ``log_prob``, KLs, the
bound) is float32, and gradients reach float32 parameters. bfloat16 has
float32's exponent range, so no loss scaling is needed (float16 would need it
and is not offered).
"""

from __future__ import annotations

import functools
import warnings

import torch
from pyro.nn import PyroModule

from ppl_vae.errors import PplVaeError

PRECISIONS = ("fp32", "bf16")


def networks(programs) -> list[torch.nn.Module]:
    """The outermost plain ``nn.Module`` s with parameters inside the pair's programs."""
    found = []

    def visit(module):
        for child in module.children():
            if isinstance(child, PyroModule) or not any(True for _ in child.parameters()):
                visit(child)
            else:
                found.append(child)

    for program in programs:
        visit(program)
    return found


def _to_float32(value):
    """Half-precision tensors (also inside tuples, lists, dicts) back to float32."""
    if torch.is_tensor(value):
        return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value
    if isinstance(value, (tuple, list)):
        return type(value)(_to_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_float32(v) for k, v in value.items()}
    return value


def _autocast_forward(forward, device_type: str):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return _to_float32(forward(*args, **kwargs))
    return run


class MixedPrecision:
    """``with MixedPrecision(pair, "bf16", device):`` runs the pair's networks in bfloat16.

    ``"fp32"`` changes nothing. The networks are found once; entering swaps
    each one's ``forward`` for an autocast wrapper and leaving restores it.
    """

    def __init__(self, pair, precision: str, device: torch.device):
        if precision not in PRECISIONS:
            raise PplVaeError(f"unknown --precision '{precision}'; choose one of: "
                              f"{', '.join(PRECISIONS)}")
        self.wrapped = []
        if precision == "bf16":
            if len(pair.modules()) < 2:
                raise PplVaeError("--precision bf16 needs model and guide to be nn.Modules "
                                  "(e.g. PyroModule) so their networks can be found; use "
                                  "--precision fp32")
            self.wrapped = [(net, _autocast_forward(net.forward, device.type))
                            for net in networks(pair.modules())]
            if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
                warnings.warn("this CPU has no native bfloat16 (measured 13x slower than fp32 "
                              "on such a CPU); --precision bf16 is meant for GPUs", stacklevel=2)

    def __enter__(self):
        for net, forward in self.wrapped:
            net.forward = forward
        return self

    def __exit__(self, *exc) -> None:
        for net, _ in self.wrapped:
            del net.forward
