"""amberpicd: private, local image processing for the Linux desktop."""

__version__ = "0.1.0"
