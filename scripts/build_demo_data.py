"""Build (or reuse) the embedded deepforest tree-crown dataset and print its counts; benchmark.py does this itself."""

import argparse

from scsa_yolo.data.deepforest import DEFAULT_DATASET_DIR, build_deepforest_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(DEFAULT_DATASET_DIR), help="dataset folder")
    parser.add_argument("--tile-size", type=int, default=320)
    parser.add_argument("--val-fraction", type=float, default=0.25, help="bottom share of each image used for val")
    parser.add_argument("--min-visible", type=float, default=0.3, help="smallest kept share of a clipped box")
    args = parser.parse_args()
    report = build_deepforest_dataset(
        args.out, tile_size=args.tile_size, val_fraction=args.val_fraction, min_visible=args.min_visible
    )
    print(report.summary())


if __name__ == "__main__":
    main()
