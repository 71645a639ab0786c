"""DVC stage `prepare_folder@SOURCE`: a folder of images -> training sub-images and held-out images.

Usage: python -m stages.prepare_folder SOURCE

Writes data/sources/SOURCE (all of it or, on any error, nothing) and metrics/sources/SOURCE/prepare.json.
Torch is never imported: memory holds one decoded photo and one shard (docs/own-images.md).
"""
from sr4x import paths
from sr4x.atomic import write_json
from sr4x.config import load_params
from sr4x.folder_source import prepare_folder
from sr4x.stage import run_stage, stage_argument

COUNTS = ("files", "train_images", "test_images", "train_patches", "flat_patches_dropped")


def main() -> str:
    params = load_params()
    name = stage_argument("source", params.sources)
    info = prepare_folder(name, params.sources[name], paths.source_data(name))
    for skipped in info["skipped"]:
        print(f"skipped {skipped['file']}: {skipped['reason']}")
    write_json(paths.source_prepare_metrics(name), {
        "prepare": {**{key: info[key] for key in COUNTS}, "skipped": len(info["skipped"]),
                    "duplicates": len(info["duplicates"]), "converted": info["converted"]}})
    return (f"prepare_folder@{name}: {info['train_images']} train images ({info['train_patches']} sub-images), "
            f"{info['test_images']} test images, {len(info['skipped'])} skipped, "
            f"converted {info['converted'] or 'none'}")


if __name__ == "__main__":
    run_stage(main)
