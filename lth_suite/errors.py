"""Errors that the CLI turns into one-line messages and exit code 2."""

from __future__ import annotations

from collections.abc import Sequence


class LthError(Exception):
    """A user-facing error: bad input, missing data, unknown plugin; never a bug."""

    exit_code = 2

    def lines(self) -> list[str]:
        """The message as one or more one-line errors."""
        return [str(self)]


class SpecError(LthError):
    """One or more problems with an experiment spec, each naming its field."""

    def __init__(self, problems: Sequence[tuple[str, str]], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per problem, each naming the source and the field."""
        prefix = f"{self.source}: " if self.source else ""
        return [f"{prefix}{loc}: {msg}" if loc else f"{prefix}{msg}" for loc, msg in self.problems]


class UnknownComponentError(LthError):
    """A spec names a component that no loaded plugin registered."""

    def __init__(self, kind: str, name: str, known: Sequence[str]):
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} '{name}' (known: {', '.join(self.known) or 'none'})")


class DataError(LthError):
    """A dataset that cannot be found, read or split as asked."""


class DataMissing(DataError):
    """The data is not there (no file or folder, a download that failed), as opposed to
    data that is there but unreadable: a dry run then plans without it."""


class TrackingError(LthError):
    """A tracking store that cannot be reached or used."""


class PluginFailure(LthError):
    """A plugin raised while the experiment ran; names the component and its plugin."""

    exit_code = 1


class Diverged(LthError):
    """A training's loss became NaN or infinite."""

    exit_code = 1

    def __init__(self, iteration: int, value: float):
        self.iteration, self.value = iteration, value
        super().__init__(f"training diverged: the loss was {value} at iteration {iteration}")

    def __reduce__(self) -> tuple[object, ...]:  # crosses from a worker process intact
        return (Diverged, (self.iteration, self.value))
