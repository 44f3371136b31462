"""Errors the user can act on. The CLI prints their message as one line and exits non-zero; the
server answers each kind with its own HTTP status (``serve.STATUS``)."""


class AdainError(Exception):
    """Base class: anything raised as this is a problem with the user's input, not a bug."""


class UsageError(AdainError):
    """A bad flag value or a request that cannot be carried out as given; the CLI exits 2."""


class WeightsError(AdainError):
    """A weights file is missing, unreadable or does not fit the network."""


class ImageError(AdainError):
    """An image file is missing, unreadable or corrupt."""


class PixelLimitError(ImageError):
    """An image (as read, or once resized) has more pixels than the limit allows."""


class Cancelled(AdainError):
    """The work was stopped by a ``Stylizer``'s ``cancelled`` option (a server's client that left)."""
