"""The Bayesian checks' part of ``RUN/diagnostics/report.md``: predictive check, SBC, NUTS,
and what is missing for this pair and why."""

from __future__ import annotations


def _fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _share(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _ppc(ppc: dict | None) -> list[str]:
    if ppc is None:
        return []
    lines = [f"## Posterior predictive check ({ppc['examples']} examples × {ppc['draws']} "
             "replicates from the guide's draws)", "",
             "p-values P(T_rep > T_obs) (mid-p); extreme: outside "
             f"[{ppc['extreme_range'][0]}, {ppc['extreme_range'][1]}] (5 % if they were "
             "uniform; posterior predictive p-values crowd towards 0.5, so more is a misfit)", ""]
    for site, entry in ppc["mean"].items():
        lines.append(f"- mean of `{site}` per example (ink for binary images): "
                     f"**{_share(entry['share_extreme'])}** extreme, median p "
                     f"{_fmt(entry['median'])}")
    lines.append(f"- discrepancy -log p(x | z) per example: **{_share(ppc['log_lik']['share_extreme'])}**"
                 f" extreme, median p {_fmt(ppc['log_lik']['median'])} (p near 0: the example "
                 "is less likely under its reconstruction than the model's replicates, which "
                 "the decoder does not explain; near 1: more likely, the decoder's noise is "
                 "wider than the data's)")
    for site, entry in (ppc.get("class_means") or {}).items():
        worst = sorted(zip(entry["p_values"], entry["classes"]),
                       key=lambda pc: -abs(pc[0] - 0.5))[:3]
        lines.append(f"- class-wise mean of `{site}`: {_share(entry['share_extreme'])} of "
                     f"{len(entry['classes'])} classes extreme; furthest: "
                     + ", ".join(f"class {c} (p {p:.3f})" for p, c in worst))
    lines += ["- in the netCDF: group `posterior_predictive`; "
              "`az.plot_ppc(idata, var_names=['x_mean'])`, `az.plot_bpv(idata, "
              "var_names=['x_mean'])`", ""]
    return lines


def _sbc(sbc: dict | None) -> list[str]:
    if sbc is None:
        return []
    if sbc.get("verdict") is None:
        return ["## Simulation-based calibration", "", f"- n/a: {sbc['note']}", ""]
    coverage = ", ".join(f"{float(a):.0%}: {v:.2f}" for a, v in sbc["coverage_median"].items())
    return ["## Simulation-based calibration of the guide", "",
            f"- **{sbc['verdict']}**",
            f"- median coverage of central guide intervals (nominal: observed): {coverage}",
            f"- dimensions failing uniformity: {[sbc['dimensions'][d] for d in sbc['failing_dimensions']] or 'none'}",
            "- ranks in `sbc_ranks.npy` (simulations × dimensions)", ""]


def _nuts(nuts: dict | None) -> list[str]:
    if nuts is None:
        return []
    if "note" in nuts:
        return ["## NUTS reference", "", f"- n/a: {nuts['note']}", ""]
    lines = [f"## NUTS reference ({len(nuts['examples'])} examples, {nuts['chains']} chains × "
             f"{nuts['draws']} draws, decoder fixed; `nuts.nc`, same dims as `posterior.nc`)",
             "", "| site | guide sd / NUTS sd: median [min, max] | max abs mean gap (NUTS sd) | "
             "max R-hat | min bulk ESS |", "|---|---|---|---|---|"]
    for site, entry in nuts.items():
        if isinstance(entry, dict):
            low, high = entry["sd_ratio_range"]
            lines.append(f"| {site} | {_fmt(entry['sd_ratio_median'])} [{_fmt(low)}, "
                         f"{_fmt(high)}] | {_fmt(entry['mean_gap_max_abs'])} | "
                         f"{_fmt(entry['rhat_max'], 3)} | {_fmt(entry['ess_bulk_min'], 0)} |")
    return lines + ["", f"- divergent transitions: {nuts['divergences']}",
                    *([f"- **warning**: {nuts['warning']}"] if nuts.get("warning") else []), ""]


def _missing(missing: dict) -> list[str]:
    if not missing:
        return []
    return ["## Not computed for this pair", "",
            *(f"- {part}: {why}" for part, why in missing.items()), ""]


def checks_lines(report: dict) -> list[str]:
    """The markdown lines of the checks present in ``report`` (none: an empty list)."""
    return [*_ppc(report.get("posterior_predictive")), *_sbc(report.get("sbc")),
            *_nuts(report.get("nuts")), *_missing(report.get("missing") or {})]
