"""spikerates: spike trains to firing rates, and LIF-family neuron models."""

__version__ = "0.2.0"

__all__ = ["__version__", "compute_rates"]


def __getattr__(name: str):
    # Loaded on first use, so importing the package (and the command line's
    # --help) stays instant.
    if name == "compute_rates":
        from spikerates.driver import compute_rates

        return compute_rates
    raise AttributeError(f"module 'spikerates' has no attribute {name!r}")
