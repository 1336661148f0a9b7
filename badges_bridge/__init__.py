"""Award Credly and Accredible badges from Open edX learning events."""

__version__ = "0.1.0"
