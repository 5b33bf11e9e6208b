"""Tests of ppl_vae/reporting/."""
