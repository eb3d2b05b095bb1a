"""Figures and paper-claim checks: real_lm part (filled in by its issue)."""
