"""Synthetic token worlds on which every bound can be checked exactly, in float64.

* :mod:`sft_tilt.synthetic.worlds`: general data the initial model fits exactly, and domain responses in
  chain-of-thought or label-only format with controllable hard-token mass and context overlap;
* :mod:`sft_tilt.synthetic.models`: free-logit and shared-feature softmax models;
* :mod:`sft_tilt.synthetic.training`: SGD and Adam training with every registered method;
* :mod:`sft_tilt.synthetic.sharding`: a sweep's cells spread over every available JAX device;
* :mod:`sft_tilt.synthetic.experiments`: the six cached experiments the synthetic figures and claims read.
"""
