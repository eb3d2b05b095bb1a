"""Figures and paper-claim checks: theory part (filled in by its issue)."""
