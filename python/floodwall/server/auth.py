"""The server's bearer token: where it comes from, and the one comparison.

A token is read from a file (``--token-file``, ``[server] token_file``) or
an environment variable (``FLOODWALL_SERVER_TOKEN``), never from the command
line (where ``ps`` shows it to every local user). A file readable by other
users is refused. The comparison hashes both sides with SHA-256 first, so
``hmac.compare_digest`` compares two 32-byte digests: its time depends
neither on where the first difference is nor on the presented token's
length. Invariant: no path returns True unless the presented token equals
the configured one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat

from floodwall.errors import ConfigError

__all__ = ["MIN_TOKEN_LENGTH", "TOKEN_ENV", "Authenticator", "read_token"]

#: The environment variable that holds the token (a file is preferred).
TOKEN_ENV = "FLOODWALL_SERVER_TOKEN"
#: Shortest token accepted: a guessable token protects nothing.
MIN_TOKEN_LENGTH = 16


def read_token(token_file: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The token from ``token_file`` (first line, stripped), else from
    :data:`TOKEN_ENV`; None when neither is given. ConfigError when the file
    is unreadable, readable by others, or the token is too short."""
    env = dict(os.environ) if environ is None else environ
    token: str | None
    if token_file:
        try:
            fd = os.open(token_file, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {token_file!r}: {exc}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"the token file {token_file!r} is not a regular file")
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(
                    f"the token file {token_file!r} is readable or writable by other users "
                    f"(mode {stat.S_IMODE(info.st_mode):o}); chmod 600 it"
                )
            if info.st_uid != os.geteuid():
                raise ConfigError(
                    f"the token file {token_file!r} belongs to another user (uid {info.st_uid})"
                )
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        lines = data.decode("utf-8", "replace").splitlines()
        token = lines[0].strip() if lines else ""
        where = f"the token file {token_file!r}"
    else:
        token = env.get(TOKEN_ENV) or None
        where = f"${TOKEN_ENV}"
        if token is None:
            return None
        token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"the token in {where} is shorter than {MIN_TOKEN_LENGTH} characters; "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if not token.isprintable() or " " in token:
        raise ConfigError(f"the token in {where} must be printable ASCII without spaces")
    return token


class Authenticator:
    """Checks an ``Authorization`` header against the configured token
    (None: no token, every request passes)."""

    __slots__ = ("_digest", "enabled")

    def __init__(self, token: str | None) -> None:
        self.enabled = token is not None
        self._digest = hashlib.sha256(token.encode()).digest() if token is not None else b""

    def check_header(self, value: bytes | None) -> bool:
        """True if ``value`` is ``Bearer <the token>``."""
        if not self.enabled:
            return True
        if value is None or value[:7].lower() != b"bearer ":
            return False
        return self.check_token(value[7:].strip())

    def check_token(self, presented: bytes) -> bool:
        """True if ``presented`` is the token (constant time in its content
        and length)."""
        if not self.enabled:
            return True
        return hmac.compare_digest(hashlib.sha256(presented).digest(), self._digest)
