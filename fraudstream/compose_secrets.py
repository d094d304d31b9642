"""`fraudstream compose-secrets ROOT`: the compose stack's secrets, made at its first start.

No key value lives in the repository. The first `docker compose up` runs this once (as
root, in the one-shot ``secrets`` service) into volumes mounted under ROOT; it prints the
values a person needs (the scorer's API key, Grafana's admin password) once, and on
every later start only says they exist. Each file is readable by the one user that
needs it:

    ROOT/fraudstream/  api-keys, redis-password, model-signing.pub.pem  (the app's uid)
    ROOT/signing/      model-signing.pem: the private key, the trainer's volume only
    ROOT/redis/        redis.conf with requirepass                       (redis's uid)
    ROOT/grafana/      admin-password                                    (grafana's uid)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fraudstream.models import signing
from fraudstream.stream.http.keys import create_key

APP_UID = 10001  # deploy/Dockerfile's user
REDIS_UID = 999  # the redis image's user
GRAFANA_UID = 472  # the grafana image's user
API_KEY_NAME = "compose"


def _write_secret(path: Path, text: str, uid: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    _own(path, uid)


def _own(path: Path, uid: int) -> None:
    if os.geteuid() == 0:  # in compose; a developer running it by hand owns the files
        os.chown(path, uid, uid)


def make(root: Path) -> list[str]:
    """Create whatever secret is missing under ``root``; the lines to print once."""
    app, signing_dir, redis_dir, grafana = (root / d for d in
                                            ("fraudstream", "signing", "redis", "grafana"))
    for directory in (app, signing_dir, redis_dir, grafana):
        directory.mkdir(parents=True, exist_ok=True)
    shown: list[str] = []
    keys_file = app / "api-keys"
    if not keys_file.exists():
        key, _ = create_key(API_KEY_NAME, keys_file)
        _own(keys_file, APP_UID)
        shown.append(f"scorer API key (X-API-Key), shown once: {key}")
    if not (app / "redis-password").exists():
        password = secrets.token_urlsafe(32)
        _write_secret(redis_dir / "redis.conf", f"requirepass {password}\n", REDIS_UID)
        _write_secret(app / "redis-password", password, APP_UID)
    if not (grafana / "admin-password").exists():
        password = secrets.token_urlsafe(18)
        _write_secret(grafana / "admin-password", password, GRAFANA_UID)
        shown.append(f"grafana user admin, password shown once: {password}")
    private, public = signing_dir / "model-signing.pem", app / "model-signing.pub.pem"
    if not private.exists():
        made = signing.generate(private, public)
        _own(private, APP_UID)
        shown.append(f"model signing key {made.key_id} made (private key in the "
                     f"signing volume, trainer only)")
    return shown


def run(root: Path) -> int:
    shown = make(root)
    for line in shown:
        print(line)
    if not shown:
        print("compose secrets exist already (values were shown at the first start)")
    return 0
