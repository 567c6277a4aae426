"""fader: a reproducible implementation of Fader Networks (Lample et al., NIPS 2017)."""

__version__ = "0.1.0"
