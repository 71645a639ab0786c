"""Put 12 free real photographs into a folder, for the documented folder-source run (docs/own-images.md).

Usage: python bench/sample_photos.py data/photos

Eleven come from scikit-image's wheel (0.25.2 from PyPI, fetched with `pip download`, nothing installed),
one from matplotlib's sample data (installed with the project). Each is public domain or CC0, as its
package's documentation states; the photos are not part of this repository.
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import matplotlib

SCIKIT_IMAGE = "scikit-image==0.25.2"
PHOTOS = {  # file in skimage/data -> what it shows and its licence (skimage.data's docstrings)
    "astronaut.png": "Eileen Collins, NASA; public domain",
    "camera.png": "a photographer, greyscale; CC0 (Lav Varshney)",
    "chelsea.png": "a cat; CC0 (Stefan van der Walt)",
    "coffee.png": "a coffee cup; CC0 (Rachel Michetti)",
    "rocket.jpg": "DSCOVR launch, SpaceX; public domain",
    "brick.png": "a brick wall, greyscale; CC0 (CC0Textures)",
    "grass.png": "grass, greyscale; CC0",
    "gravel.png": "gravel, greyscale; CC0 (CC0Textures)",
    "hubble_deep_field.jpg": "Hubble eXtreme Deep Field, NASA; public domain",
    "retina.jpg": "a fundus photograph; CC0 (Mikael Haggstrom)",
    "text.png": "a street sign, greyscale; public domain",
}
MATPLOTLIB = {"grace_hopper.jpg": "Grace Hopper, US Navy; public domain"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    out = parser.parse_args().folder
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                        "--dest", tmp, SCIKIT_IMAGE], check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for name in PHOTOS:
                (out / name).write_bytes(archive.read(f"skimage/data/{name}"))
    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    for name in MATPLOTLIB:
        shutil.copyfile(sample_data / name, out / name)
    for name, what in {**PHOTOS, **MATPLOTLIB}.items():
        print(f"{out / name}: {what}")


if __name__ == "__main__":
    main()
