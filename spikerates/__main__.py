"""``python -m spikerates``: the command line."""

from spikerates.cli import main

if __name__ == "__main__":
    main()
