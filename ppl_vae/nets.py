"""Encoder and decoder networks.

All networks accept any number of leading batch dimensions (particles,
examples, ...): an encoder maps ``(*batch, *event_shape) -> (*batch, out_dim)``
and a decoder maps ``(*batch, latent_dim) -> (*batch, *event_shape)``, which is
what vectorized particles in the ELBO estimators need.

The convolutional pair for 64x64 images is the one of Burgess et al. (2018) and
disentanglement_lib: four 4x4 stride-2 convolutions with 32, 32, 64, 64
channels, then a 256-unit dense layer, mirrored by transposed convolutions.
Smaller square images use the same recipe with fewer stages (32x32: three
stages; 28x28: two stages with 32 and 64 channels).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from ppl_vae.errors import PplVaeError

CONV_CHANNELS = {64: (32, 32, 64, 64), 32: (32, 32, 64), 28: (32, 64)}


ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh}


def activation_layer(name: str) -> type[nn.Module]:
    """The nonlinearity called ``name`` (``relu``, ``elu`` or ``tanh``)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise PplVaeError(f"unknown activation '{name}'; choose "
                          f"{' or '.join(ACTIVATIONS)}") from None


class MLP(nn.Module):
    """Fully connected net on flattened inputs: ``in -> hidden... -> out``.

    ``features(x)`` is the last hidden layer and :attr:`head` the final linear map,
    so ``forward(x) = head(features(x))``; a guide can read a second head off the
    same features (see :mod:`ppl_vae.guides.structured`).
    """

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], hidden=(400,),
                 activation: str = "relu"):
        super().__init__()
        if not hidden or any(int(h) < 1 for h in hidden):
            raise PplVaeError(f"--hidden must be one or more positive layer widths, e.g. 400 "
                              f"or 200,200; got {','.join(map(str, hidden))}")
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        nonlinearity = activation_layer(activation)
        sizes = [math.prod(self.in_shape), *hidden, math.prod(self.out_shape)]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nonlinearity())
        self.net = nn.Sequential(*layers)

    @property
    def head(self) -> nn.Linear:
        """The final linear layer."""
        return cast(nn.Linear, self.net[-1])  # the last layer made above

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(*batch, *in_shape) -> (*batch, hidden[-1])``: every layer but the head."""
        batch = x.shape[: x.dim() - len(self.in_shape)]
        return self.net[:-1](x.reshape(*batch, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.head(h).reshape(*h.shape[:-1], *self.out_shape)


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convolutions, then a 256-unit dense layer (``features``), then
    the linear :attr:`head` to ``out_dim``."""

    def __init__(self, event_shape: tuple[int, ...], out_dim: int, hidden: int = 256,
                 activation: str = "relu"):
        super().__init__()
        channels_in, side = event_shape[0], event_shape[-1]
        self.event_shape = tuple(event_shape)
        nonlinearity = activation_layer(activation)
        layers: list[nn.Module] = []
        for channels in CONV_CHANNELS[side]:
            layers += [nn.Conv2d(channels_in, channels, 4, stride=2, padding=1), nonlinearity()]
            channels_in, side = channels, side // 2
        self.conv = nn.Sequential(*layers)
        self.dense = nn.Sequential(
            nn.Linear(channels_in * side * side, hidden), nonlinearity(),
            nn.Linear(hidden, out_dim),
        )

    @property
    def head(self) -> nn.Linear:
        """The final linear layer."""
        return cast(nn.Linear, self.dense[-1])  # the last layer made above

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(*batch, *event_shape) -> (*batch, hidden)``: every layer but the head."""
        batch = x.shape[: x.dim() - 3]
        h = self.conv(x.reshape(-1, *self.event_shape))
        return self.dense[:-1](h.flatten(1)).reshape(*batch, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: dense layers, then stride-2 transposed convolutions."""

    def __init__(self, latent_dim: int, event_shape: tuple[int, ...], hidden: int = 256,
                 activation: str = "relu"):
        super().__init__()
        nonlinearity = activation_layer(activation)
        self.event_shape = tuple(event_shape)
        channels = CONV_CHANNELS[event_shape[-1]]
        self.start_side = event_shape[-1] // 2 ** len(channels)
        self.start_channels = channels[-1]
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nonlinearity(),
            nn.Linear(hidden, self.start_channels * self.start_side**2),
            nonlinearity(),
        )
        outs = [*reversed(channels[:-1]), event_shape[0]]
        layers: list[nn.Module] = []
        channels_in = self.start_channels
        for i, channels_out in enumerate(outs):
            layers.append(nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                layers.append(nonlinearity())
            channels_in = channels_out
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        h = self.dense(z.reshape(-1, z.shape[-1]))
        h = h.reshape(-1, self.start_channels, self.start_side, self.start_side)
        return self.deconv(h).reshape(*batch, *self.event_shape)


def _use_conv(event_shape: tuple[int, ...], net: str) -> bool:
    """Whether ``net`` ('auto', 'mlp' or 'conv') means a convolutional net for these inputs."""
    conv_ok = len(event_shape) == 3 and event_shape[1] == event_shape[2] in CONV_CHANNELS
    if net == "conv" and not conv_ok:
        sides = ", ".join(f"{s}x{s}" for s in CONV_CHANNELS)
        raise PplVaeError(
            f"--net conv needs (channels, side, side) images with side in {sides}; "
            f"got event shape {tuple(event_shape)}: use --net mlp"
        )
    if net not in ("auto", "mlp", "conv"):
        raise PplVaeError(f"unknown net '{net}'; choose auto, mlp or conv")
    return net == "conv" or (net == "auto" and conv_ok)


def make_encoder(event_shape, out_dim: int, net: str = "auto", hidden=(400,),
                 activation: str = "relu") -> MLP | ConvEncoder:
    """An encoder ``(*batch, *event_shape) -> (*batch, out_dim)``: conv for square images.

    Both kinds expose ``features(x)`` (the last hidden layer) and ``head`` (the final
    linear map), ``encoder(x) = encoder.head(encoder.features(x))``.
    """
    if _use_conv(tuple(event_shape), net):
        return ConvEncoder(tuple(event_shape), out_dim, activation=activation)
    return MLP(tuple(event_shape), (out_dim,), hidden, activation)


def make_decoder(latent_dim: int, event_shape, net: str = "auto", hidden=(400,),
                 activation: str = "relu") -> nn.Module:
    """A decoder ``(*batch, latent_dim) -> (*batch, *event_shape)`` of unconstrained outputs."""
    if _use_conv(tuple(event_shape), net):
        return ConvDecoder(latent_dim, tuple(event_shape), activation=activation)
    return MLP((latent_dim,), tuple(event_shape), tuple(reversed(hidden)), activation)
