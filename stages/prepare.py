"""DVC stage `prepare`: read the archive safely, write paired low/high tensors and a sample figure."""
from src import paths
from src.archive import read_archive
from src.atomic import save_figure, write_json
from src.config import load_params
from src.figures import image_grid
from src.pairs import make_pairs, save_pairs
from src.stage import run_stage

SHOWN = 8


def main() -> str:
    load_params()  # validate params.yaml before any work
    splits = {name: make_pairs(s.images, s.labels) for name, s in read_archive(paths.RAW_ARCHIVE).items()}
    for name, pairs in splits.items():
        save_pairs(paths.prepared_split(name), pairs)
    write_json(paths.PREPARED_INFO, {name: len(pairs) for name, pairs in splits.items()})
    rows = {}
    for name, pairs in splits.items():
        rows[f"{name} 8x8"] = pairs.low[:SHOWN]
        rows[f"{name} 32x32"] = pairs.high[:SHOWN]
    save_figure(paths.PAIRS_FIGURE, image_grid(rows, "Low-resolution inputs above their originals"))
    return f"prepare: {len(splits['train'])} train and {len(splits['test'])} test pairs"


if __name__ == "__main__":
    run_stage(main)
