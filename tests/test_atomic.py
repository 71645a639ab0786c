import json
import signal
import subprocess
import sys
import time

import pytest

from sr4x.atomic import atomic_path, write_json


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
        "import sys, time\n"
        "from sr4x.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp, open(tmp, 'wb') as f:\n"
        "    for _ in range(1000):\n"
        "        f.write(b'new' * 10000); f.flush(); print('writing', flush=True); time.sleep(0.01)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b"old" * 1000


def test_torch_files_are_byte_identical_and_readable_by_others(tmp_path):
    import os

    import torch

    from sr4x.atomic import torch_save
    from sr4x.provenance import file_md5

    state = {"w": torch.arange(12.0).reshape(3, 4)}
    torch_save(tmp_path / "a.pt", state)
    torch_save(tmp_path / "b.pt", state)
    assert file_md5(tmp_path / "a.pt") == file_md5(tmp_path / "b.pt")  # stable DVC hashes
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_full_disk_in_a_stage_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    import errno

    import torch

    from sr4x.atomic import torch_save
    from sr4x.stage import run_stage

    def save_on_a_full_disk(obj, f):
        f.write(b"partial")
        try:  # what torch.save does: its zip writer's RuntimeError hides the OSError it handled
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 9600960 vs 9600912") from err

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    target = tmp_path / "data/prepared/train.pt"
    with pytest.raises(SystemExit) as exit_:
        run_stage(lambda: torch_save(target, {"x": 1}) or "done")
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"error: could not write {target}: No space left on device\n"
    assert list(target.parent.iterdir()) == []  # no partial file, no temporary left behind


def test_a_failing_source_is_not_reported_as_a_write_error(tmp_path):
    with pytest.raises(ConnectionError):
        with atomic_path(tmp_path / "x"):
            raise ConnectionError("connection lost")
