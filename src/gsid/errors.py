"""Exception types. Every message says what was received, what is allowed and how to fix it."""


class GsidError(Exception):
    """Base class of all gsid errors."""


class DataValidationError(GsidError, ValueError):
    """Input data is malformed: the message names the file, the row and the fix."""


class ArtifactError(GsidError):
    """A saved artifact (dataset, index, model) is missing, corrupted or of another version."""


class NotFittedError(GsidError, RuntimeError):
    """An object was used before `fit`/`index` was called."""


def check_options(given: dict, allowed: set[str] | list[str], what: str) -> None:
    """Reject unknown options with the list of valid ones (never ignore them silently)."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise GsidError(f"unknown {what} option(s) {unknown}; valid options are {sorted(allowed)}")
