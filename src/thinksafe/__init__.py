"""thinksafe: safety of multimodal reasoning models."""

__version__ = "0.1.0"
