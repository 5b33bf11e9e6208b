"""Pyro's own ``examples/vae/ss_vae_M2.py``, run offline on the local MNIST files.

The script, its ``utils/custom_mlp.py`` and ``utils/mnist_cached.py`` are taken
unchanged from a clone of Pyro's repository (``PYRO_REPO``, default the mirror this
project was built beside; ``git show HEAD:examples/vae/...``) into a scratch
folder; the script's ``main(args)`` is called with the defaults of its command line and
``--aux-loss`` (as its example run). What is substituted, and nothing else:

- the ``__main__`` block: it asserts ``pyro.__version__.startswith("1.9.1")`` (1.9.2 is
  installed) before parsing; its divisibility asserts are checked here instead.

- ``pyro.contrib.examples.util``: Pyro's file subclasses ``torchvision.datasets.MNIST``
  (not installed here, and it would download). The stand-in's ``MNIST`` reads the
  local IDX files into the same two attributes torchvision's class gives
  (``data``: uint8 ``(N, 28, 28)``, ``targets``: int64 ``(N,)``, the 60,000 training
  images for ``train=True``, else the 10,000 test ones); ``print_and_log`` prints the
  line and writes it to the log file, as Pyro's does; ``get_data_directory`` returns
  the data folder.
- ``visdom`` and ``utils/vae_plots.py`` (only used with ``--visualize``): empty stand-ins.

``MNISTCached``, the label draw (``np.random`` per class, after ``pyro.set_rng_seed``),
the validation split (training images 50,000-60,000), the schedule, the two SVIs and
the accuracy are Pyro's code. The per-epoch lines of Pyro's log are parsed into JSON
(``benchmarks/results/reproduce/m2_pyro_own/``)::

    python benchmarks/reproduce/m2_pyro_own.py --labels 3000 --draws 0 1 2 --epochs 5
    python benchmarks/reproduce/m2_pyro_own.py --labels 100 --batch-size 100 --draws 0

Pyro's script asserts ``sup_num % batch_size == 0``: 100 labels run at batch 100.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from ppl_vae.data.idx import read_idx

MIRROR = Path(os.environ.get("PYRO_REPO", "/work/.mirror/pyro-ppl+pyro/repo"))  # a Pyro clone
FILES = ["examples/vae/ss_vae_M2.py", "examples/vae/utils/custom_mlp.py",
         "examples/vae/utils/mnist_cached.py"]
RESULTS = Path("benchmarks/results/reproduce/m2_pyro_own")
COMMAND: list[str] = []  # this driver's own command line
LINE = re.compile(r"^(\d+) epoch: avg losses (.*) validation accuracy (\S+) "
                  r"test accuracy (\S+)$")


def extract(scratch: Path) -> tuple[Path, str]:
    """Pyro's files from the mirror into ``scratch``; the mirror's commit."""
    commit = subprocess.run(["git", "-C", str(MIRROR), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    for name in FILES:
        target = scratch / Path(name).relative_to("examples/vae")
        target.parent.mkdir(parents=True, exist_ok=True)
        text = subprocess.run(["git", "-C", str(MIRROR), "show", f"HEAD:{name}"], check=True,
                              capture_output=True, text=True).stdout
        target.write_text(text)
    (scratch / "utils" / "__init__.py").write_text("")
    return scratch / "ss_vae_M2.py", commit


def stand_ins(data_path: Path) -> None:
    """The substituted modules of the docstring, in ``sys.modules`` of this process only."""

    class MNIST(torch.utils.data.Dataset):
        """torchvision's MNIST attributes, read from the local IDX files."""

        def __init__(self, root=None, train=True, download=False, **unused):
            stem = "train" if train else "t10k"
            self.data = torch.from_numpy(
                read_idx(data_path / f"{stem}-images-idx3-ubyte.gz", 3).copy())
            self.targets = torch.from_numpy(
                read_idx(data_path / f"{stem}-labels-idx1-ubyte.gz", 1).astype(np.int64))

        def __len__(self):
            return len(self.data)

    def print_and_log(logger, msg):
        print(msg, flush=True)
        if logger is not None:
            logger.write(f"{msg}\n")
            logger.flush()

    util = types.ModuleType("pyro.contrib.examples.util")
    util.MNIST, util.print_and_log = MNIST, print_and_log
    util.get_data_directory = lambda filepath=None: str(data_path)
    sys.modules["pyro.contrib.examples.util"] = util
    visdom = types.ModuleType("visdom")
    visdom.Visdom = object
    sys.modules["visdom"] = visdom
    plots = types.ModuleType("utils.vae_plots")
    plots.mnist_test_tsne_ssvae = plots.plot_conditional_samples_ssvae = None
    sys.modules["utils.vae_plots"] = plots


def parse_log(text: str) -> list[dict]:
    """Pyro's per-epoch log lines as records."""
    rows = []
    for line in text.splitlines():
        match = LINE.match(line.strip())
        if match:
            losses = [float(v) for v in match.group(2).split()]
            rows.append({"epoch": int(match.group(1)) + 1, "losses": losses,
                         "validation_accuracy": float(match.group(3)),
                         "test_accuracy": float(match.group(4))})
    return rows


def run(labels: int, draw: int, epochs: int, batch_size: int, data_path: Path,
        scratch: Path) -> dict:
    """One run of Pyro's script (``--aux-loss``, its other defaults), its parsed log."""
    script, commit = extract(scratch)
    stand_ins(data_path)
    log = scratch / f"labels{labels}_draw{draw}.log"
    if labels % batch_size or 10_000 % batch_size:
        raise SystemExit(f"Pyro's script asserts that the batch ({batch_size}) divides the "
                         f"labels ({labels}) and the 10,000 validation and test images")
    args = argparse.Namespace(  # the defaults of Pyro's command line, with --aux-loss
        cuda=False, jit=False, num_epochs=epochs, aux_loss=True, aux_loss_multiplier=46.0,
        enum_discrete="parallel", sup_num=float(labels), z_dim=50, hidden_layers=[500],
        learning_rate=0.00042, beta_1=0.9, batch_size=batch_size, logfile=str(log),
        seed=draw, visualize=False)
    sys.path.insert(0, str(scratch))
    start = time.perf_counter()
    runpy.run_path(str(script), run_name="ss_vae_M2")["main"](args)
    sys.path.remove(str(scratch))
    seconds = time.perf_counter() - start
    per_epoch = parse_log(log.read_text())
    sup = sys.modules["utils.mnist_cached"].MNISTCached.train_data_sup
    best = max(per_epoch, key=lambda r: r["validation_accuracy"])  # first of ties, as Pyro's <
    return {"loop": "pyro_own", "labels": labels, "draw": draw, "epochs": epochs,
            "batch_size": batch_size, "per_epoch": per_epoch,
            "best_validation_epoch": best["epoch"],
            "test_accuracy_at_best_validation": best["test_accuracy"],
            "seconds": round(seconds, 1), "seconds_per_epoch": round(seconds / epochs, 1),
            "labelled_images_sum": float(sup.sum()),
            "pyro_commit": commit, "pyro_args": vars(args),
            "substituted": "pyro.contrib.examples.util (MNIST read from local IDX files, "
                           "print_and_log, get_data_directory), visdom, utils.vae_plots",
            "command": COMMAND[0]}


def from_log(labels: int, draw: int, epochs_asked: int, batch_size: int, scratch: Path) -> dict:
    """The record of a run stopped early (to free the CPU), from the epochs its log holds."""
    per_epoch = parse_log((scratch / f"labels{labels}_draw{draw}.log").read_text())
    best = max(per_epoch, key=lambda r: r["validation_accuracy"])
    return {"loop": "pyro_own", "labels": labels, "draw": draw, "epochs": len(per_epoch),
            "epochs_asked": epochs_asked, "stopped_early": True, "batch_size": batch_size,
            "per_epoch": per_epoch, "best_validation_epoch": best["epoch"],
            "test_accuracy_at_best_validation": best["test_accuracy"],
            "seconds": None, "seconds_per_epoch": None, "command": COMMAND[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=3000)
    parser.add_argument("--draws", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--data-path", type=Path, default=Path("../shared/data/mnist"))
    parser.add_argument("--scratch", type=Path, default=Path("runs/reproduce/m2_pyro_own"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", default="", help="suffix of the result file's name")
    parser.add_argument("--from-log", action="store_true",
                        help="write the record of a run stopped early from its log")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    COMMAND.append("python " + " ".join(sys.argv))
    RESULTS.mkdir(parents=True, exist_ok=True)
    for draw in args.draws:
        path = RESULTS / f"labels{args.labels}_draw{draw}{args.tag}.json"
        if path.exists():
            continue
        scratch = args.scratch / f"labels{args.labels}_draw{draw}"
        if args.from_log:
            record = from_log(args.labels, draw, args.epochs, args.batch_size, scratch)
            path.write_text(json.dumps(record, indent=1) + "\n")
            continue
        record = run(args.labels, draw, args.epochs, args.batch_size, args.data_path.resolve(),
                     scratch.resolve())
        for name in [n for n in sys.modules if n == "utils" or n.startswith("utils.")]:
            del sys.modules[name]  # MNISTCached caches its split in class attributes
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"{path.name}: test accuracy at best validation "
              f"{record['test_accuracy_at_best_validation']:.4f}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
