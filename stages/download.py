"""DVC stage `download`: fetch the CIFAR-10 python archive and verify its md5.

The source is download.url / download.md5 from params.yaml. For an offline copy without
editing params, set CIFAR10_URL (a path, file:// or http(s) URL) and, if the copy is not the
official archive, CIFAR10_MD5: the archive's content hash still lands in dvc.lock.
"""
import os

from sr4x import paths
from sr4x.archive import download
from sr4x.config import load_params, parse_params
from sr4x.stage import run_stage


def main() -> str:
    source = load_params().download
    url, md5 = os.environ.get("CIFAR10_URL"), os.environ.get("CIFAR10_MD5")
    if url or md5:  # validated exactly like the params they replace
        override = {"url": url or source.url, "md5": md5 or source.md5}
        source = parse_params({"download": override}).download
    download(source.url, source.md5, paths.RAW_ARCHIVE)
    size_mb = paths.RAW_ARCHIVE.stat().st_size / 1e6
    return f"download: {source.url} -> {paths.RAW_ARCHIVE} ({size_mb:.1f} MB), md5 {source.md5} verified"


if __name__ == "__main__":
    run_stage(main)
