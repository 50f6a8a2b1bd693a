"""Plugins: the hook specifications, the plugin manager and the component registry."""

from .manager import LOAD_ENV, Plugins, load_plugins

__all__ = ["LOAD_ENV", "Plugins", "load_plugins"]
