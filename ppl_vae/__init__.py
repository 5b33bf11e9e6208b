"""ppl-vae: variational autoencoders as Pyro programs.

The public face::

    import ppl_vae
    data = ppl_vae.data.load("shapes", n=20_000, seed=0)
    pair = ppl_vae.build("beta_vae", guide="diagonal", latent_dim=10, beta=4.0, data=data)
    run = ppl_vae.fit(pair.model, pair.guide, data, elbo="meanfield", epochs=10, out="runs/b4")
    ppl_vae.evaluate(run.model, run.guide, data.test, iw_samples=1000)
    ppl_vae.compare("runs/b4", "runs/b1")  # paired, after ppl-vae evaluate of each
    run = ppl_vae.load_run("runs/b4")
    ppl_vae.diagnose("runs/b4")            # -> runs/b4/diagnostics/

Importing changes no Pyro or torch setting. The engine's own calls run with
module-local PyroModule parameters (:func:`ppl_vae.engine.engine_settings`,
entered and left inside each call), so two models in one process never share
parameters through Pyro's global param store, and Pyro's own ``SVI`` keeps
working on every pair outside them.
"""

from ppl_vae import data
from ppl_vae.compare import compare
from ppl_vae.engine import engine_settings
from ppl_vae.errors import PplVaeError
from ppl_vae.evaluate import evaluate
from ppl_vae.pair import Pair, build
from ppl_vae.trained import Run, load_run
from ppl_vae.training import fit

__version__ = "0.1.0"


def diagnose(run_folder, **options) -> dict:
    """:func:`ppl_vae.reporting.diagnostics.diagnose`, imported on first use (ArviZ is slow
    to import)."""
    from ppl_vae.reporting.diagnostics import diagnose as diagnose_run

    return diagnose_run(run_folder, **options)

__all__ = ["PplVaeError", "Pair", "Run", "build", "compare", "data", "diagnose", "engine_settings",
           "evaluate", "fit", "load_run"]
