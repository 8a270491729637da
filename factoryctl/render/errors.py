"""The errors a render reports (kept apart so that every render module can raise them)."""

from __future__ import annotations

from ..errors import FactoryctlError


class RenderError(FactoryctlError):
    """A template failed (a factoryctl bug) or the output broke a site policy (air-gap)."""


class UnsafeOutput(RenderError):
    """The output folder is not one render may write: it holds files of someone else, is a link,
    or is a folder the user's own files live in (the factory's folder, the current one)."""
