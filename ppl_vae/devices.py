"""Which torch device a run uses."""

from __future__ import annotations

import torch

from ppl_vae.errors import PplVaeError


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a clear error for an absent GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PplVaeError("--device cuda was asked for but no CUDA GPU is visible; use "
                          "--device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError:
        raise PplVaeError(f"unknown device '{device}'; use auto, cpu or cuda") from None
