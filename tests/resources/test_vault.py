import base64
import hashlib
import stat

import pytest

from integration_pipelines.resources.vault import CredentialVault, VaultError

SECRET = "s3cr3t-client-secret-value"


def test_round_trip_and_ciphertext_hides_plaintext() -> None:
    vault = CredentialVault([CredentialVault.generate_key()])
    token = vault.encrypt(SECRET)
    assert vault.decrypt(token) == SECRET
    assert SECRET not in token
    assert base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("=") not in token
    assert vault.encrypt(SECRET) != token  # fresh IV each time


def test_fingerprint_is_short_hash_of_primary_key() -> None:
    key_a, key_b = CredentialVault.generate_key(), CredentialVault.generate_key()
    vault = CredentialVault([key_a, key_b])
    assert vault.fingerprint == hashlib.sha256(key_a.encode()).hexdigest()[:8]
    assert CredentialVault([key_b, key_a]).fingerprint != vault.fingerprint
    assert key_a not in repr(vault)


def test_rotation_old_token_readable_then_reencrypted_then_old_key_dropped() -> None:
    old_key, new_key = CredentialVault.generate_key(), CredentialVault.generate_key()
    old_vault = CredentialVault([old_key])
    old_token = old_vault.encrypt(SECRET)

    rotated_vault = CredentialVault([new_key, old_key])
    assert rotated_vault.decrypt(old_token) == SECRET
    new_token = rotated_vault.rotate(old_token)
    assert new_token != old_token

    new_only = CredentialVault([new_key])
    assert new_only.decrypt(new_token) == SECRET  # re-encrypted under the new primary
    with pytest.raises(VaultError) as err:
        new_only.decrypt(old_token)
    assert (
        str(err.value) == "credential cannot be decrypted with the configured keys (rotated out or corrupted)"
    )
    with pytest.raises(VaultError):
        new_only.rotate(old_token)


def test_corrupted_token_error_has_no_secret_or_key() -> None:
    key = CredentialVault.generate_key()
    vault = CredentialVault([key])
    token = vault.encrypt(SECRET)
    with pytest.raises(VaultError) as err:
        vault.decrypt(token[:-4] + "AAAA")
    message = str(err.value)
    assert SECRET not in message and key not in message and token not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_invalid_key_error_does_not_echo_the_key() -> None:
    bad = "not-a-fernet-key-but-secret-material"
    with pytest.raises(VaultError) as err:
        CredentialVault([CredentialVault.generate_key(), bad])
    assert bad not in str(err.value)
    assert "#2" in str(err.value)


def test_from_env_reads_comma_separated_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    old_key, new_key = CredentialVault.generate_key(), CredentialVault.generate_key()
    token = CredentialVault([old_key]).encrypt(SECRET)
    monkeypatch.setenv("MY_VAULT_KEYS", f" {new_key} , {old_key} ")
    vault = CredentialVault.from_env("MY_VAULT_KEYS")
    assert vault.decrypt(token) == SECRET
    assert vault.fingerprint == hashlib.sha256(new_key.encode()).hexdigest()[:8]


def test_from_env_unset_explains_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTEGRATION_VAULT_KEYS", raising=False)
    with pytest.raises(VaultError) as err:
        CredentialVault.from_env()
    message = str(err.value)
    assert "INTEGRATION_VAULT_KEYS" in message
    assert "Fernet.generate_key()" in message


def test_from_env_creates_key_file_0600_and_reuses_it(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("INTEGRATION_VAULT_KEYS", raising=False)
    key_file = tmp_path / "state" / "vault.key"
    with pytest.raises(VaultError) as err:
        CredentialVault.from_env(key_file=key_file)  # no create_key_file: refuse
    assert str(key_file) in str(err.value)
    assert not key_file.exists()

    first = CredentialVault.from_env(key_file=key_file, create_key_file=True)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = first.encrypt(SECRET)
    second = CredentialVault.from_env(key_file=key_file)
    assert second.fingerprint == first.fingerprint
    assert second.decrypt(token) == SECRET


def test_env_var_wins_over_key_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    file_key, env_key = CredentialVault.generate_key(), CredentialVault.generate_key()
    key_file = tmp_path / "vault.key"
    key_file.write_text(f"# demo key\n{file_key}\n")
    monkeypatch.setenv("INTEGRATION_VAULT_KEYS", env_key)
    assert CredentialVault.from_env(key_file=key_file).fingerprint == CredentialVault([env_key]).fingerprint
    monkeypatch.delenv("INTEGRATION_VAULT_KEYS")
    assert CredentialVault.from_env(key_file=key_file).fingerprint == CredentialVault([file_key]).fingerprint
