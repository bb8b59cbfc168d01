"""Partner credentials encrypted at rest with Fernet, with key rotation through MultiFernet."""

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

DEFAULT_ENV_VAR = "INTEGRATION_VAULT_KEYS"
GENERATE_KEY_COMMAND = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class VaultError(Exception):
    """The vault cannot do what was asked. Messages never contain plaintext or key material."""


class CredentialVault:
    """Encrypts and decrypts connection secrets with a list of Fernet keys.

    The first key is the primary: everything is encrypted with it. Every key is tried when
    decrypting, which is how keys are rotated: put a new key first, keep the old one after
    it, re-encrypt stored secrets with :meth:`rotate` (their :attr:`fingerprint` changes), then
    drop the old key.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        if isinstance(keys, str | bytes):
            raise VaultError("CredentialVault takes a sequence of keys, not a single string")
        cleaned = [k.strip() for k in keys if k and k.strip()]
        if not cleaned:
            raise VaultError(f"no vault key given; generate one with: {GENERATE_KEY_COMMAND}")
        fernets = []
        for position, key in enumerate(cleaned, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise VaultError(
                    f"vault key #{position} is not a valid Fernet key (32 url-safe base64-encoded bytes); "
                    f"generate one with: {GENERATE_KEY_COMMAND}"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._fingerprint = hashlib.sha256(cleaned[0].encode()).hexdigest()[:8]
        self._key_count = len(cleaned)

    def __repr__(self) -> str:
        return f"CredentialVault(primary={self._fingerprint}, keys={self._key_count})"

    @staticmethod
    def generate_key() -> str:
        """A new random Fernet key, as text."""
        return Fernet.generate_key().decode()

    @property
    def fingerprint(self) -> str:
        """A short, non-secret id of the primary key (first 8 hex digits of its SHA-256)."""
        return self._fingerprint

    def encrypt(self, plaintext: str) -> str:
        """The secret encrypted under the primary key, as a url-safe text token."""
        if not isinstance(plaintext, str):
            raise VaultError("only text secrets can be encrypted")
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of a token made by any of the configured keys."""
        try:
            return self._fernet.decrypt(_as_bytes(token)).decode("utf-8")
        except (InvalidToken, TypeError, ValueError):
            raise VaultError(
                "credential cannot be decrypted with the configured keys (rotated out or corrupted)"
            ) from None

    def rotate(self, token: str) -> str:
        """The same secret re-encrypted under the primary key."""
        try:
            return self._fernet.rotate(_as_bytes(token)).decode("ascii")
        except (InvalidToken, TypeError, ValueError):
            raise VaultError(
                "credential cannot be decrypted with the configured keys (rotated out or corrupted)"
            ) from None

    @classmethod
    def from_env(
        cls,
        var: str = DEFAULT_ENV_VAR,
        key_file: Path | None = None,
        create_key_file: bool = False,
    ) -> "CredentialVault":
        """The vault configured for this process.

        Keys come from the environment variable `var`, comma-separated, primary first. When it
        is unset and `key_file` is given, keys are read from that file (one per line, blank
        lines and ``#`` comments ignored). When the file does not exist and `create_key_file`
        is true, a new key is generated and written to it with mode 0600 -- this is for the
        local demo only; in any shared environment set the variable from a secret store, since
        a key next to the data it protects protects nothing.
        """
        raw = os.environ.get(var, "").strip()
        if raw:
            keys = [k.strip() for k in raw.split(",") if k.strip()]
            if not keys:
                raise VaultError(f"{var} is set but holds no key; generate one with: {GENERATE_KEY_COMMAND}")
            return cls(keys)
        if key_file is not None:
            path = Path(key_file)
            if path.exists():
                try:
                    lines = path.read_text(encoding="utf-8").splitlines()
                except OSError as exc:
                    raise VaultError(f"cannot read vault key file {path}: {exc.strerror}") from None
                keys = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
                if not keys:
                    raise VaultError(
                        f"vault key file {path} holds no key; set {var} or put a key in the file "
                        f"(generate one with: {GENERATE_KEY_COMMAND})"
                    )
                return cls(keys)
            if create_key_file:
                key = cls.generate_key()
                _write_private(path, key + "\n")
                return cls([key])
        where = f" or create the key file {key_file}" if key_file is not None else ""
        raise VaultError(
            f"no vault key configured: set {var} to one or more comma-separated Fernet keys "
            f"(primary first){where}; generate a key with: {GENERATE_KEY_COMMAND}"
        )


def _as_bytes(token: str | bytes) -> bytes:
    return token.encode("ascii") if isinstance(token, str) else token


def _write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (fails if it appeared meanwhile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


__all__ = ["DEFAULT_ENV_VAR", "CredentialVault", "VaultError"]
