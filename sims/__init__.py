"""Numerical checks of the theory: synthetic token worlds (JAX, float64) and a real-LM harness."""
