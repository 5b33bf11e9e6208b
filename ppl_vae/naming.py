"""A program's own names for the contract's parts: observed site, data plate, input keywords.

The engine speaks the contract (DESIGN.md): the observation is the sample site
``"x"``, per-example sites sit in ``pyro.plate("data")`` and a dataset input
``y`` is passed as ``y=``. Pyro's examples say ``"obs"``, ``"documents"`` and
``ys=`` (one-hot). :class:`Names` records how a program names them and
:func:`renamed` wraps the program so the engine sees the contract's names,
while the program runs exactly as written::

    fit(vae.model, vae.guide, data, observe="obs", plate="documents",
        inputs={"ys": "y:onehot"})

``inputs`` maps each keyword of the program to a dataset field, optionally with
``:onehot`` (an integer field passed as one-hot float rows, ``None`` passed on as
``None``, as Pyro's semi-supervised example expects). The partly-known mask of a
field follows it to the keyword. Renaming is a Pyro messenger around the
program: sample sites and plate frames are renamed as they are emitted, so the
traces the engine reads hold ``"x"`` and ``"data"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from pyro.poutine.messenger import Messenger
from torch.nn import functional as F

from ppl_vae.errors import PplVaeError

TRANSFORMS = ("onehot",)


@dataclass(frozen=True)
class Names:
    """How a program names the contract's parts (the defaults are the contract's own).

    Attributes:
        observe: the observed sample site (contract: ``"x"``).
        plate: the per-example plate (contract: ``"data"``).
        keywords: ``{keyword: [field, transform or None, classes or None]}``.
    """

    observe: str = "x"
    plate: str = "data"
    keywords: dict = field(default_factory=dict)

    @property
    def is_contract(self) -> bool:
        """Whether nothing is renamed."""
        return self.observe == "x" and self.plate == "data" and all(
            k == f and t is None for k, (f, t, _) in self.keywords.items())

    def fields(self) -> list[str]:
        """The dataset fields the program takes, in keyword order."""
        return [f for f, _, _ in self.keywords.values()]

    def to_json(self) -> dict:
        return asdict(self)


def parse_inputs(inputs, observe: str = "x", plate: str = "data", data=None) -> Names:
    """:class:`Names` from ``fit``'s ``inputs`` (names, or ``{keyword: "field[:onehot]"}``)."""
    mapping = dict(inputs) if isinstance(inputs, dict) else {name: name for name in inputs}
    keywords = {}
    for keyword, target in mapping.items():
        name, _, transform = str(target).partition(":")
        if transform and transform not in TRANSFORMS:
            raise PplVaeError(f"input '{keyword}': unknown transform ':{transform}'; "
                              f"write '{name}' or '{name}:onehot'")
        classes = None
        if transform == "onehot":
            labels = None if data is None else data.inputs("train").get(name)
            if labels is None or labels.dtype != torch.int64:
                raise PplVaeError(f"input '{keyword}': ':onehot' needs an integer field "
                                  f"'{name}' in the data")
            classes = int(labels.max()) + 1
        keywords[keyword] = [name, transform or None, classes]
    for text, what in ((observe, "observe"), (plate, "plate")):
        if not isinstance(text, str) or not text:
            raise PplVaeError(f"{what}= must be a site name (a non-empty string), got {text!r}")
    return Names(observe, plate, keywords)


class _Rename(Messenger):
    """Rename the observed site to ``"x"`` and the data plate's frames to ``"data"``."""

    def __init__(self, names: Names):
        super().__init__()
        self.names = names

    def _process_message(self, msg) -> None:
        if msg["type"] == "sample" and msg["name"] == self.names.observe:
            msg["name"] = "x"
        if self.names.plate != "data":
            msg["cond_indep_stack"] = tuple(
                f._replace(name="data") if f.name == self.names.plate else f
                for f in msg["cond_indep_stack"])


class Renamed:
    """``program`` as the engine sees it under :class:`Names`; every attribute (the
    contract's hooks, ``__self__``) reads through to the program."""

    def __init__(self, program, names: Names):
        self.program, self.names = program, names

    def __call__(self, x, **inputs):
        with _Rename(self.names):
            return self.program(x, **self.keyword_inputs(inputs, x.dtype))

    def keyword_inputs(self, inputs: dict, dtype=torch.float32) -> dict:
        """Dataset fields as the program's keywords (a keyword already given stays as is)."""
        inputs = dict(inputs)
        for keyword, (name, transform, classes) in self.names.keywords.items():
            value = inputs.pop(name, None) if keyword != name or keyword in inputs else None
            if transform == "onehot" and value is not None and not value.is_floating_point():
                value = F.one_hot(value, classes).to(dtype)
            inputs.setdefault(keyword, value)
        return inputs

    def __getattr__(self, name):
        if name in ("program", "names"):
            raise AttributeError(name)
        return getattr(self.program, name)


def program_inputs(program, inputs: dict) -> dict:
    """``inputs`` (dataset fields) under the keywords ``program`` itself takes: what a user's
    loss callable is handed, so it can call the programs (and its own) as written."""
    return program.keyword_inputs(inputs) if isinstance(program, Renamed) else inputs


def renamed(program, names: Names):
    """``program`` wrapped for the engine, or itself when ``names`` renames nothing."""
    return program if names.is_contract else Renamed(program, names)


def unwrapped(program):
    """The program as the user wrote it."""
    return program.program if isinstance(program, Renamed) else program
