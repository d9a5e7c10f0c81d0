"""fisherae: a reference implementation of Fisher Auto-Encoders (Elkhalil et al., AISTATS 2021)."""

__version__ = "0.1.0"
