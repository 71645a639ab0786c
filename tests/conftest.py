import os
from pathlib import Path

import pytest
from cifar_fixture import write_archive  # tests/ is on sys.path: pytest puts a rootless test folder there

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture
def tiny_archive(tmp_path: Path) -> Path:
    """A valid CIFAR-format archive with 200 train and 100 test images."""
    return write_archive(tmp_path / "tiny.tar.gz")
