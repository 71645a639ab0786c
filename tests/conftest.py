import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

from cifar_fixture import write_archive  # noqa: E402


@pytest.fixture
def tiny_archive(tmp_path: Path) -> Path:
    """A valid CIFAR-format archive with 200 train and 100 test images."""
    return write_archive(tmp_path / "tiny.tar.gz")
