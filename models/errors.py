"""Errors that reach the user as one clear line ("<file>: <problem>"), never a traceback."""


class UserError(Exception):
    """A problem with the user's input (file, option, case, checkpoint): one line, exit status 2."""


class VideoError(UserError):
    """A clip that cannot be read: missing, empty, corrupt, unsupported or without frames."""


class CheckpointError(UserError):
    """A checkpoint that is missing, corrupt, or does not match this code's configuration."""


class ManifestError(UserError):
    """A manifest or data folder that cannot be used."""
