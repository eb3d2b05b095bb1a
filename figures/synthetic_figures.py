"""Figures and paper-claim checks: synthetic part (filled in by its issue)."""
