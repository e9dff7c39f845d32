"""scaling: scaling-law studies end to end."""

__version__ = "0.1.0"
