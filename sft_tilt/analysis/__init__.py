"""Reading measurements: seed intervals and the decision boundaries they lie on."""
