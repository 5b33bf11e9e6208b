"""Rendering speed of the `shapes` dataset (images per second, best of a few repeats).

    python benchmarks/bench_shapes_render.py [--n 10000] [--repeats 3]

Measures `ppl_vae.data.shapes.render` on n uniform factor draws at 64x64 and
32x32, and the whole `load("shapes", n=...)` (render + split + float32 tensors).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ppl_vae.data import load
from ppl_vae.data.shapes import FACTOR_SIZES, render


def best_seconds(fn, repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    codes = np.random.default_rng(0).integers(0, FACTOR_SIZES, size=(args.n, len(FACTOR_SIZES)))
    for size in (64, 32):
        seconds = best_seconds(lambda size=size: render(codes, size), args.repeats)
        print(f"render  {size}x{size}  n={args.n}: {seconds:.3f} s  {args.n / seconds:,.0f} images/s")
    for size in (64, 32):
        seconds = best_seconds(lambda size=size: load("shapes", n=args.n, size=size), args.repeats)
        print(f"load    {size}x{size}  n={args.n}: {seconds:.3f} s  {args.n / seconds:,.0f} images/s")


if __name__ == "__main__":
    main()
