"""Name -> factory tables for models, guides and ELBO estimators.

Each family registers itself where it is defined::

    @MODELS.register("vae", "Gaussian prior, neural decoder")
    def build_vae(...): ...

so the CLI, ``ppl_vae.build`` and ``ppl-vae list`` never hold an if/elif chain.
The tables are filled by the modules that define the entries (imported by
:mod:`ppl_vae.pair` for models and guides, by :mod:`ppl_vae.elbo` itself);
this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ppl_vae.errors import PplVaeError


@dataclass(frozen=True)
class Entry:
    """One registered factory and the line ``ppl-vae list`` prints for it."""

    name: str
    factory: Callable[..., Any]
    description: str


class Registry:
    """A small name -> factory table with helpful errors for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, description: str) -> Callable:
        """Decorator adding ``factory`` under ``name``."""

        def add(factory: Callable) -> Callable:
            self._entries[name] = Entry(name, factory, description)
            return factory

        return add

    def get(self, name: str) -> Entry:
        """The entry for ``name``; an unknown name lists the known ones."""
        if name not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise PplVaeError(f"unknown {self.kind} '{name}'; choose one of: {known}")
        return self._entries[name]

    def entries(self) -> list[Entry]:
        """All entries, sorted by name."""
        return [self._entries[k] for k in sorted(self._entries)]


MODELS = Registry("model")
GUIDES = Registry("guide")
ELBOS = Registry("ELBO")

