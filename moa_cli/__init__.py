"""moa: Mixture-of-Agents chat in the terminal."""

__version__ = "0.1.0"
