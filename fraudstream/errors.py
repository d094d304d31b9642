"""Errors that end a command with one readable line and a non-zero exit."""


class FraudstreamError(Exception):
    """Base class: the message is shown to the user as is."""

    exit_code = 1


class ConfigError(FraudstreamError):
    """A setting or argument is invalid."""

    exit_code = 2


class ServiceError(FraudstreamError):
    """A broker or Redis could not be reached or started."""


class TopicError(FraudstreamError):
    """A topic cannot be created as asked."""


class CredentialsError(FraudstreamError):
    """A broker or Redis refused the configured credentials or certificate: retrying
    with the same settings cannot help."""

    exit_code = 6
