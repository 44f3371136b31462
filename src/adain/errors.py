"""Errors the user can act on. The CLI prints their message as one line and exits non-zero."""


class AdainError(Exception):
    """Base class: anything raised as this is a problem with the user's input, not a bug."""


class WeightsError(AdainError):
    """A weights file is missing, unreadable or does not fit the network."""


class ImageError(AdainError):
    """An image file is missing, unreadable, corrupt or too large."""
