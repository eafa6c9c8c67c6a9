"""Bad-input cases of label data (convert onto labels, boxes, flip pairs, CSV dialects), in
the ``Bad`` form of corpus.py. Run by test_bad_labels_leave_files_as_they_were.py."""

from __future__ import annotations

from pathlib import Path

from .corpus import IMG4, Bad, Bases, Build, J, coco, copy_base, csv_lines, set_path

CONVERT = ("convert",)
MINE = '{"my": "own labels"}'


def convert_onto(name: str, to: str, into_folder: bool = False) -> Build:
    """``convert`` of the valid COCO set onto an existing file ``out/<name>``, named as such or,
    ``into_folder``, as the folder ``out/`` (which then gets its default file name).

    The extra arguments are the rest of the command line: the destination and ``--to``.
    """

    def build(tmp: Path, b: Bases) -> tuple[Path, list[str]]:
        src = copy_base(b.coco, tmp / "coco") / "annotations.json"
        folder = tmp / "out"
        folder.mkdir()
        (folder / name).write_text(MINE)
        dst = folder if into_folder else folder / name
        return src, [str(dst), "--to", to]

    return build


def decimal_commas(lines: list[str]) -> list[str]:
    """The base CSV as a spreadsheet in a decimal-comma locale writes it: ';' and '1,5'."""
    out = []
    for line in lines:
        image, *cells = line.split(",")
        out.append(";".join([image, *(c.replace(".", ",") for c in cells)]))
    return out


A4 = f"{IMG4}, annotation id 4"  # its keypoints span x 6.75..45.75, y 22.3..56 of 64x64

CORPUS9: dict[str, Bad] = {
    # item 9: a user's labels are never replaced without --overwrite
    "convert onto an existing json": Bad(
        convert_onto("mine.json", "coco"), "mine.json", None, "pass --overwrite", CONVERT
    ),
    "convert onto an existing csv": Bad(
        convert_onto("mine.csv", "csv"), "mine.csv", None, "pass --overwrite", CONVERT
    ),
    "convert into a folder holding annotations.json": Bad(
        convert_onto("annotations.json", "coco", into_folder=True),
        "out/annotations.json",
        None,
        "pass --overwrite",
        CONVERT,
    ),
    # item 11: a box that misses its image or its own keypoints
    "box outside its image": Bad(
        coco(set_path("annotations", 3, "bbox", value=[500, 500, 20, 20])),
        J,
        A4,
        "the box [500, 500, 20, 20] lies entirely outside the 64x64 image",
    ),
    "box away from its keypoints": Bad(
        coco(set_path("annotations", 3, "bbox", value=[50, 2, 10, 10])),
        J,
        A4,
        "holds none of the instance's",
    ),
    # item 13 (and item 3: flip pairs that name a missing keypoint stay fatal)
    "flip pair of a keypoint with itself": Bad(
        coco(set_path("categories", 0, "flip_pairs", value=[[3, 4], [5, 5]])),
        J,
        "category id 1",
        "flip pair (5, 5) pairs keypoint",
    ),
    "flip pair naming a missing keypoint": Bad(
        coco(set_path("categories", 0, "flip_pairs", value=[[3, 14]])),
        J,
        "category id 1",
        "flip pair (3, 14) names a keypoint outside 0..10",
    ),
    "csv with decimal commas": Bad(
        csv_lines(decimal_commas), "labels.csv", "line 2", "(write decimals with a '.')"
    ),
}
