import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.atomic import atomic_path, write_json

ROOT = Path(__file__).resolve().parents[1]


def test_error_mid_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"mse": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"mse": ')  # half-written
            raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"mse": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_sigkill_mid_write_keeps_the_old_file_intact(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old" * 1000)
    writer = (
        "import sys, time; sys.path.insert(0, sys.argv[2]);"
        "from src.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp, open(tmp, 'wb') as f:\n"
        "    for _ in range(1000):\n"
        "        f.write(b'new' * 10000); f.flush(); print('writing', flush=True); time.sleep(0.01)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer, str(target), str(ROOT)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b"old" * 1000
