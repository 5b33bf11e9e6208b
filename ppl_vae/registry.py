"""Name -> factory tables for models, guides, ELBO estimators and dataset sources.

Each family registers itself where it is defined, with a line for ``ppl-vae
list`` and a help text for each option its factory takes::

    @ESTIMATORS.register("tcvae", "β-TCVAE (Chen et al. 2018)",
                         tc_weight="weight β of the total-correlation term")
    def tcvae(particles: int = 1, tc_weight: float = 6.0): ...

An option is a keyword parameter of the factory with a default; its type is
the default's (or the annotation's). :meth:`Registry.create` checks the options
given against the signature, and :meth:`Registry.options` is what the CLI
turns into flags (``--tc-weight``), so a new entry's options reach the command
line without editing it; a dataset source's option registered without a help text
is Python-only (``sha256=`` of mnist: no text form). The tables are filled by the
modules that define the entries (imported by :mod:`ppl_vae.pair` for models and
guides, by :mod:`ppl_vae.estimators` for estimators, by :mod:`ppl_vae.data` for
sources); this module imports none of them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ppl_vae.errors import PplVaeError

# Help of the options several entries of one registry take (an entry's own help wins).
PAIR_HELP = {  # model and guide factories
    "latent_dim": "latent dimensions K",
    "likelihood": "p(x | z): bernoulli, continuous_bernoulli or gaussian",
    "net": "encoder and decoder: auto (conv for square 28/32/64 images, else mlp), mlp or conv",
    "sigma": "gaussian likelihood: fixed noise scale σ (None: learned)",
    "activation": "encoder and decoder MLP nonlinearity: relu, elu or tanh",
    "hidden": "the MLP encoder's hidden widths, comma-separated (the decoder mirrors them), "
              "e.g. 200,200",
}
SOURCE_HELP = {  # dataset sources
    "n": "examples before the train/test split, or all (default: the dataset's; shapes "
         "20000, dsprites 20000, the others all)",
    "path": "the data's file or folder (default: none)",
}


@dataclass(frozen=True)
class Option:
    """One keyword option of a factory: its default, its type and what it does."""

    name: str
    default: Any
    help: str
    kind: type = str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _kind(parameter: inspect.Parameter) -> type:
    """The option's type: its default's, else the first type its annotation names."""
    if parameter.default is not None:
        return type(parameter.default)
    annotation = str(parameter.annotation).split("|")[0].strip()
    return {"int": int, "float": float, "bool": bool}.get(annotation, str)


@dataclass(frozen=True)
class Entry:
    """One registered factory, the line ``ppl-vae list`` prints for it and its options' help."""

    name: str
    factory: Callable[..., Any]
    description: str
    help: dict = field(default_factory=dict)

    def options(self) -> dict[str, Option]:
        """The factory's keyword parameters that have defaults, in signature order."""
        parameters = inspect.signature(self.factory).parameters.values()
        return {p.name: Option(p.name, p.default,
                               self.help.get(p.name, ""), _kind(p))
                for p in parameters if p.default is not inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


class Registry:
    """A small name -> factory table with helpful errors for unknown names and options."""

    def __init__(self, kind: str, shared_help: dict[str, str] | None = None):
        self.kind = kind
        self.shared_help = shared_help or {}  # help of options several entries take
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, description: str, **help: str) -> Callable:
        """Decorator adding ``factory`` under ``name``; ``help``: option -> one line (over the
        registry's shared help)."""

        def add(factory: Callable) -> Callable:
            self._entries[name] = Entry(name, factory, description, {**self.shared_help, **help})
            return factory

        return add

    def get(self, name: str) -> Entry:
        """The entry for ``name``; an unknown name lists the known ones."""
        if name not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise PplVaeError(f"unknown {self.kind} '{name}'; choose one of: {known}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def entries(self) -> list[Entry]:
        """All entries, sorted by name."""
        return [self._entries[k] for k in sorted(self._entries)]

    def options(self, name: str) -> dict[str, Option]:
        """The options ``name``'s factory takes, with their defaults and help."""
        return self.get(name).options()

    def effective(self, name: str, **options) -> dict:
        """Every option of ``name`` as it will be used: the defaults overlaid by ``options``;
        an option it does not take is refused, naming the ones it does."""
        known = self.options(name)
        unknown = sorted(set(options) - set(known))
        if unknown:
            flags = ", ".join(o.flag for o in known.values()) or "none"
            given = ", ".join("--" + k.replace("_", "-") for k in unknown)
            raise PplVaeError(f"the {self.kind} '{name}' takes no {given}; its options: {flags}")
        return {k: options.get(k, option.default) for k, option in known.items()}

    def create(self, name: str, **options) -> Any:
        """``name``'s factory called with ``options`` (checked by :meth:`effective`)."""
        return self.get(name).factory(**self.effective(name, **options))

    def all_options(self) -> dict[str, list[tuple[str, Option]]]:
        """Option name -> ``[(entry name, option), ...]`` over every entry (the CLI's flags)."""
        table: dict[str, list[tuple[str, Option]]] = {}
        for entry in self.entries():
            for option in entry.options().values():
                table.setdefault(option.name, []).append((entry.name, option))
        return table


MODELS = Registry("model", PAIR_HELP)
GUIDES = Registry("guide", PAIR_HELP)
ESTIMATORS = Registry("estimator")
DATA_SOURCES = Registry("dataset", SOURCE_HELP)
