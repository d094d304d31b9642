"""A separate virtual environment for the Quix Streams peer (it pins an older
confluent-kafka than fraudstream's), created once and reused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fraudstream.package_view import build_package_view

CHECKOUT = Path(__file__).resolve().parents[1]
# In a checkout, beside .venv; from an installed wheel, in the user's cache (never inside
# site-packages).
QUIX_VENV = (CHECKOUT / ".venv-quix" if (CHECKOUT / "pyproject.toml").exists() else
             Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
             / "fraudstream" / "venv-quix")
# Same scientific stack as the main environment: the model is a pickle.
REQUIREMENTS = ["quixstreams==3.28.1", "numpy==2.4.6", "scikit-learn==1.9.1", "scipy==1.17.1",
                "joblib==1.6.0", "redis[hiredis]==8.1.0", "msgspec==0.22.0",
                "threadpoolctl==3.8.0", "tl2cgen==1.0.0", "prometheus-client==0.26.0",
                # The compiled feature and decision kernels.
                "numba==0.68.1", "llvmlite==0.50.0",
                # Models are signed: verifying one needs Ed25519.
                "cryptography==50.0.2"]


def quix_python() -> str:
    """Path of the Quix environment's python, creating the environment if needed."""
    python = QUIX_VENV / "bin" / "python"
    stamp = QUIX_VENV / ".requirements"
    wanted = "\n".join(REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return str(python)


def package_view() -> Path:
    """A directory to put on PYTHONPATH: the Quix environment imports our code from it
    without installing it."""
    return build_package_view(QUIX_VENV / "fraudstream-view")
