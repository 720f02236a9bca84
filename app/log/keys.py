"""The log's signing key: from LOG_SIGNING_KEY or LOG_SIGNING_KEY_FILE (a signer key string,
`PRIVATE+KEY+<name>+<key id>+<seed>`); development and tests generate one into instance/ at
first use. Production refuses to start without one (config.ProductionConfig.validate)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask import current_app

from app.log.note import Signer, Verifier

GENERATED_KEY_FILE = "log-signing.key"


def log_signer() -> Signer:
    """The signer of this application's checkpoints (read once per application)."""
    signer = current_app.extensions.get("log_signer")
    if signer is None:
        signer = current_app.extensions["log_signer"] = _load_signer()
    return signer


def log_verifier() -> Verifier:
    """The published verifier key of the log."""
    return log_signer().verifier


def _load_signer() -> Signer:
    config = current_app.config
    if config.get("LOG_SIGNING_KEY"):
        return Signer.from_skey(config["LOG_SIGNING_KEY"].strip())
    if config.get("LOG_SIGNING_KEY_FILE"):
        return Signer.from_skey(Path(config["LOG_SIGNING_KEY_FILE"]).read_text().strip())
    if config["ENV_NAME"] == "production":
        raise RuntimeError("LOG_SIGNING_KEY or LOG_SIGNING_KEY_FILE is required in production")
    return generated_signer(Path(current_app.instance_path) / GENERATED_KEY_FILE,
                            config["LOG_ORIGIN"])


def generated_signer(path: Path, name: str) -> Signer:
    """The key in `path`, generated (mode 0600) by whichever process comes first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Signer.from_skey(_read_complete(path))
    with os.fdopen(handle, "w") as file:
        file.write(Signer.generate(name).skey + "\n")
    return Signer.from_skey(path.read_text().strip())


def _read_complete(path: Path) -> str:
    # Another process may have created the file and not yet written it.
    for _ in range(500):
        text = path.read_text().strip()
        if text:
            return text
        time.sleep(0.01)
    raise RuntimeError(f"{path} holds no signing key")
