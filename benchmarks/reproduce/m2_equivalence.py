"""Pyro's own ss_vae_M2.py against ours through ``fit``, epoch by epoch, at 3,000 labels.

Both sides start from the same label draw (Pyro's numpy draw for the seed) and the same
initial weights (our :class:`SSVAE` draws Pyro's for one seed); they differ in the batch
order and the sampling noise (Pyro's ``DataLoader`` and our generator). The curves agree
when, at every compared epoch, the two means over label draws differ by less than the
draw-to-draw standard deviation (pooled over both sides); a run that never trains (test
accuracy never above 0.2) is listed and compared apart. Reads
``m2_pyro_own/labels3000_draw*.json`` and ``m2/spaced_<E>ep/labels3000_draw*.json``
(or their ``.partial.json``), writes ``m2_equivalence/equivalence.{json,md}``::

    python benchmarks/reproduce/m2_equivalence.py --ours spaced_15ep --epochs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

RESULTS = Path("benchmarks/results/reproduce")
CHANCE = 0.2  # a run whose test accuracy never passes this did not train (chance: 0.1)


def _ours(folder: Path, draw: int) -> dict | None:
    for name in (f"labels3000_draw{draw}.json", f"labels3000_draw{draw}.partial.json"):
        if (folder / name).exists():
            return json.loads((folder / name).read_text())
    return None


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def compare(ours_folder: str, epochs: int) -> dict:
    """Per epoch and metric: each side's mean and sd over draws, the paired differences."""
    pyro = {int(p.stem.split("draw")[1]): json.loads(p.read_text())
            for p in sorted((RESULTS / "m2_pyro_own").glob("labels3000_draw*.json"))
            if p.stem.split("draw")[1].isdigit()}
    ours = {d: _ours(RESULTS / "m2" / ours_folder, d) for d in pyro}
    draws = sorted(d for d in pyro if ours[d] is not None
                   and len(ours[d]["per_epoch"]) >= epochs and len(pyro[d]["per_epoch"]) >= epochs)
    failed = {side: [d for d in draws if max(e["test_accuracy"] for e in
                                             runs[d]["per_epoch"][:epochs]) <= CHANCE]
              for side, runs in (("pyro", pyro), ("ours", ours))}
    trained = {side: [d for d in draws if d not in failed[side]] for side in failed}
    result = {"draws": draws, "epochs": epochs, "ours": ours_folder,
              "rows": _rows(pyro, ours, draws, epochs),
              "trained_draws": trained, "trained_rows": _rows(pyro, ours, trained, epochs),
              "failed": failed}
    result["agree"] = all(r["within_noise"] for r in result["rows"])
    result["agree_on_trained_draws"] = all(r["within_noise"] for r in result["trained_rows"])
    result.update({
        "same_labelled_images": {
            str(d): abs(pyro[d]["labelled_images_sum"] - ours[d]["labelled_images_sum"]) < 1e-2
            for d in draws if "labelled_images_sum" in ours[d]
            and "labelled_images_sum" in pyro[d]},
        "pyro_seconds_per_epoch": [pyro[d]["seconds_per_epoch"] for d in draws],
        "ours_seconds_per_epoch": [statistics.fmean(e["seconds"] for e in ours[d]["per_epoch"])
                                   for d in draws],
        "command": "python " + " ".join(sys.argv)})
    return result


def _rows(pyro: dict, ours: dict, draws: list[int] | dict, epochs: int) -> list[dict]:
    """Per epoch and metric: each side's values over its draws (``draws``, or
    ``{"pyro": [...], "ours": [...]}``), means, sds, the gap of the means and the
    draw-to-draw sd pooled over both sides."""
    chosen = draws if isinstance(draws, dict) else {"pyro": draws, "ours": draws}
    rows = []
    for epoch in range(1, epochs + 1):
        for metric in ("validation_accuracy", "test_accuracy"):
            a = [pyro[d]["per_epoch"][epoch - 1][metric] for d in chosen["pyro"]]
            b = [ours[d]["per_epoch"][epoch - 1][metric] for d in chosen["ours"]]
            pooled = ((len(a) - 1) * _sd(a) ** 2 + (len(b) - 1) * _sd(b) ** 2) \
                / (len(a) + len(b) - 2)
            gap = statistics.mean(b) - statistics.mean(a)
            rows.append({"epoch": epoch, "metric": metric, "pyro": a, "ours": b,
                         "pyro_mean": statistics.mean(a), "ours_mean": statistics.mean(b),
                         "pyro_sd": _sd(a), "ours_sd": _sd(b), "draw_noise_sd": pooled ** 0.5,
                         "mean_gap": gap, "within_noise": abs(gap) < pooled ** 0.5})
    return rows


def markdown(result: dict) -> str:
    lines = ["# M2: Pyro's own ss_vae_M2.py vs ours through fit (3,000 labels)", ""]
    for title, draws, rows in (("all draws", result["draws"], result["rows"]),
                               ("each side's draws that train", result["trained_draws"],
                                result["trained_rows"])):
        lines += [f"## {title}: {draws}", "",
                  "| epoch | metric | Pyro's script, per draw | ours (fit), per draw | "
                  "mean gap (ours - Pyro) | draw-to-draw sd | within noise |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['epoch']} | {r['metric'].split('_')[0]} | "
                         f"{' / '.join(f'{v:.4f}' for v in r['pyro'])} | "
                         f"{' / '.join(f'{v:.4f}' for v in r['ours'])} | {r['mean_gap']:+.4f} | "
                         f"{r['draw_noise_sd']:.4f} | {'yes' if r['within_noise'] else 'no'} |")
        lines.append("")
    lines.append(f"Did not train (test accuracy never above {CHANCE}): Pyro's script draws "
                 f"{result['failed']['pyro']}, ours draws {result['failed']['ours']}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", default="spaced_15ep")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    result = compare(args.ours, args.epochs)
    out = RESULTS / "m2_equivalence"
    out.mkdir(parents=True, exist_ok=True)
    (out / "equivalence.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "table.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
