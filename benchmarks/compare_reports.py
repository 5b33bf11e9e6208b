"""Two run reports compared key by key: numbers to a tolerance, everything else exactly.

How "behaviour unchanged" is checked across commits: run ``make demo`` (or any
``ppl-vae train``) on each, then::

    python benchmarks/compare_reports.py A/report.json B/report.json [--tolerance 1e-9]

Prints every key whose values differ (timings always do) and the count of equal ones.
"""

from __future__ import annotations

import argparse
import json
import math


def flattened(obj, prefix: str = "") -> dict:
    """Nested dicts and lists as ``{"a.0.b": leaf}``."""
    if isinstance(obj, (dict, list)) and obj:
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        out = {}
        for key, value in items:
            out.update(flattened(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: obj}


def same(a, b, tolerance: float) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if not numbers:
        return a == b
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance) or (
        math.isnan(a) and math.isnan(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--tolerance", type=float, default=1e-9)
    args = parser.parse_args()
    with open(args.first) as f1, open(args.second) as f2:
        a, b = flattened(json.load(f1)), flattened(json.load(f2))
    differing = [k for k in sorted(set(a) | set(b))
                 if not same(a.get(k, "<missing>"), b.get(k, "<missing>"), args.tolerance)]
    for key in differing:
        print(f"{key}: {a.get(key, '<missing>')!r} -> {b.get(key, '<missing>')!r}")
    print(f"{len(set(a) | set(b)) - len(differing)} equal, {len(differing)} different")


if __name__ == "__main__":
    main()
