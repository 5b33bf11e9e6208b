"""Look at the `shapes` dataset: random samples, a rotation sweep and a scale sweep.

Writes examples/figures/shapes_grid.png. Each panel's title gives its factor
values: shape, scale, orientation (degrees), pos_x, pos_y.

    python examples/shapes_grid.py [--size 64|32]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ppl_vae.data import load
from ppl_vae.data.shapes import SHAPE_NAMES, factor_values

COLUMNS = 8


def _sweep(column: int, base: list[int], classes: list[int]) -> np.ndarray:
    """Factor codes equal to ``base`` except ``column``, which runs over ``classes``."""
    codes = np.tile(np.array(base), (len(classes), 1))
    codes[:, column] = classes
    return codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, choices=(64, 32))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "figures")
    args = parser.parse_args()

    ds = load("shapes", n=200, seed=1, size=args.size)
    random_codes = ds.train_factors[: 3 * COLUMNS].numpy()
    rotation = _sweep(2, [2, 5, 0, 15, 15], list(range(0, 40, 5)))  # heart, every 5th angle
    scales = _sweep(1, [1, 0, 8, 15, 15], [0, 1, 2, 3, 4, 5, 5, 5])  # ellipse, scale 0.5 -> 1
    scales[6:, 0] = [0, 2]  # and a square and a heart at scale 1
    codes = np.concatenate([random_codes, rotation, scales])
    images = ds.images_for_factors(codes).numpy()[:, 0]

    rows = len(codes) // COLUMNS
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(1.9 * COLUMNS, 2.15 * rows))
    values = factor_values(codes)
    for i, ax in enumerate(axes.flat):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(
            f"{SHAPE_NAMES[values['shape'][i]]} s={values['scale'][i]:.1f} "
            f"θ={np.degrees(values['orientation'][i]):.0f}°\n"
            f"x={values['pos_x'][i]:.2f} y={values['pos_y'][i]:.2f}",
            fontsize=7,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"shapes {args.size}x{args.size}: rows 1-3 random, row 4 heart rotation, "
        "row 5 scale sweep",
        fontsize=10,
    )
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("shapes_grid.png" if args.size == 64 else f"shapes_grid_{args.size}.png")
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
