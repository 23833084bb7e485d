"""spikerates: spike trains to firing rates, and LIF-family neuron models."""

__version__ = "0.1.0"
