"""The settings the engine's own calls run under, entered and left by each call.

Importing ppl_vae changes no Pyro or torch setting. Inside :func:`engine_settings`
(entered by ``fit``, ``evaluate``, ``diagnose``, ``load_run`` and a pair's
``scope()``), ``PyroModule`` parameters are module-local
(``pyro.settings.context(module_local_params=True)``): two pairs in one process
never share parameters through Pyro's global param store, and the fast path of
:mod:`ppl_vae.traces` may run a module by ``forward``. Outside, Pyro behaves as
Pyro: its own ``SVI`` works on every pair, built here or not.
"""

from __future__ import annotations

import contextlib

import pyro
from pyro.nn import PyroModule

from ppl_vae.naming import unwrapped


def _local_store(program) -> None:
    """Give a PyroModule made outside the setting the local store Pyro gives one made inside.

    Pyro creates a module's call context with a private param store only when
    ``module_local_params`` is on at construction; a module built under
    Pyro's default needs one before it is called with the setting on. Pyro's
    default mode never reads it.
    """
    program = unwrapped(program)
    if isinstance(program, PyroModule):
        for module in program.modules():
            context = getattr(module, "_pyro_context", None)
            if context is not None and not hasattr(context, "param_state"):
                context.param_state = {"params": {}, "constraints": {}}


@contextlib.contextmanager
def engine_settings(*programs):
    """Module-local PyroModule parameters for the duration of an engine call on ``programs``."""
    for program in programs:
        _local_store(program)
    with pyro.settings.context(module_local_params=True):
        yield
