"""DVC stage `prepare`: read the archive safely, write paired low/high tensors and a sample figure."""
from sr4x import paths
from sr4x.archive import read_archive
from sr4x.atomic import write_json
from sr4x.config import load_params
from sr4x.figures import image_grid, save_figure
from sr4x.pairs import make_pairs, save_pairs
from sr4x.stage import run_stage

SHOWN = 8


def main() -> str:
    load_params()  # validate params.yaml before any work
    archive = read_archive(paths.RAW_ARCHIVE)
    splits = {name: make_pairs(s.images, s.labels) for name, s in archive.items()}
    for name, pairs in splits.items():
        save_pairs(paths.prepared_split(name), pairs)
    write_json(paths.PREPARED_INFO, {**{name: len(pairs) for name, pairs in splits.items()},
                                     "classes": archive["test"].classes})
    rows = {}
    for name, pairs in splits.items():
        for half in (pairs.low, pairs.high):
            rows[f"{name} {half.shape[-1]}x{half.shape[-2]}"] = half[:SHOWN]
    save_figure(paths.PAIRS_FIGURE, image_grid(rows, "Low-resolution inputs above their originals"))
    return f"prepare: {len(splits['train'])} train and {len(splits['test'])} test pairs"


if __name__ == "__main__":
    run_stage(main)
