"""The reports a person reads, built one way: ``report.json`` and ``report.md``.

- :mod:`~ppl_vae.reporting.builder`: :class:`~ppl_vae.reporting.builder.Report`, the
  stages every report shares (latent statistics, figures, the model's and guide's
  ``report`` hooks, each failure named in the report) and :func:`write_report`;
- :mod:`~ppl_vae.reporting.run_report`: :func:`finish_run`, the report of a trained run;
- :mod:`~ppl_vae.reporting.diagnostics`: ``diagnose`` / ``diagnose_pair``, the report of
  ``ppl-vae diagnose`` (imported on its own: ArviZ is slow to import);
- :mod:`~ppl_vae.reporting.markdown`: the two texts, ``run_markdown`` and
  ``diagnostics_markdown``.
"""
