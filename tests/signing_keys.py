"""The test suite's model signing key pair: every artifact a test writes is signed with
it, the test process trusts it, and so does every process a test starts (the ``settings``
fixture names both files)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fraudstream import model_trust
from fraudstream.models import signing
from fraudstream.settings import PREFIX, Settings


@dataclass(frozen=True)
class TestKeys:
    directory: Path
    private: Path
    public: Path

    def settings(self) -> dict[str, str]:
        """The settings that hand this pair to a process."""
        return {"model_public_keys": str(self.public), "model_signing_key": str(self.private)}

    def environ(self) -> dict[str, str]:
        """The same as environment variables, for a process started without settings."""
        return {PREFIX + name.upper(): value for name, value in self.settings().items()}


_keys: TestKeys | None = None


def install() -> TestKeys:
    """Make the pair (once per test process) and make this process trust and sign with it."""
    global _keys
    if _keys is None:
        directory = Path(tempfile.mkdtemp(prefix="fraudstream-test-keys-"))
        directory.chmod(0o755)  # the public key is read by container users too
        private, public = directory / "signing.pem", directory / "signing.pub.pem"
        signing.generate(private, public)
        _keys = TestKeys(directory, private, public)
    model_trust.configure(Settings(**_keys.settings()))
    return _keys


def remove() -> None:
    if _keys is not None:
        shutil.rmtree(_keys.directory, ignore_errors=True)


def pair() -> TestKeys:
    return install() if _keys is None else _keys
