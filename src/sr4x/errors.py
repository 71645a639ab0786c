"""The project's user-facing errors: problems the user can fix, reported in one line without a traceback."""
from __future__ import annotations


class ProjectError(Exception):
    """Base of every error the stage runner and the upscaler report as one line (exit code non-zero)."""


class ParamsError(ProjectError, ValueError):
    """An invalid value or key in params.yaml, or options this machine cannot run."""


class ArchiveError(ProjectError, ValueError):
    """The archive or one of its batches is not a valid CIFAR-10 python archive."""


class UpscaleError(ProjectError):
    """A problem with the upscaler's inputs, weights or outputs, named for the user."""
