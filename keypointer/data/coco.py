"""COCO keypoint JSON, as COCO and MMPose write it: reader and writer.

Read: ``images`` (``id``, ``file_name``, optional ``width``/``height``), ``annotations``
(``keypoints`` as flat x, y, v triplets or, as some MMPose sets write them, a list of
``[x, y, v]`` lists; optional ``bbox``, ``iscrowd``) and ``categories`` (``keypoints`` names,
optional; 1-based ``skeleton``). Other fields are ignored. Skeleton edges that name a keypoint
the category does not have are dropped with one warning (they only draw lines); flip pairs
that do are fatal (they change the training targets). Crowd
annotations and annotations without a ``keypoints`` field are dropped and counted in
``KeypointSet.dropped``. Annotations whose keypoints are all unlabelled are kept (``validate``
leaves them out of training and counts them). Several annotations of one image are several
instances; an annotation's ``track_id`` (PoseTrack's identity across frames, an integer or a
string) becomes ``Instance.track`` (as text), and the writer stores it back (an integer when
the track is one written in decimal).

Besides the standard fields the writer stores, per category, ``flip_pairs`` (0-based index
pairs, as MMPose's dataset meta does) and, when set, ``sigmas``; the reader uses them when
present and otherwise guesses flip pairs from left/right names.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from keypointer.data.types import (
    Instance,
    KeypointSet,
    Sample,
    image_size,
    path_exists,
    read_text,
    require_image_files,
    writable_instance,
)
from keypointer.errors import DataError
from keypointer.files import write_text_atomic
from keypointer.skeleton import Skeleton, guess_flip_pairs

CROWD = "crowd annotations (iscrowd=1)"
NO_KEYPOINTS = "annotations without a keypoints field"
OTHER_CATEGORY = "annotations of other categories"


def read_coco(
    path: str | Path, images: str | Path | None = None, category: int | str | None = None
) -> KeypointSet:
    """Read a COCO keypoint JSON file.

    ``images``: folder the ``file_name`` entries are relative to; by default the JSON's folder,
    then ``images/`` beside it, then ``../images``. ``category``: id or name of the category to
    read when the file's keypoint categories have different keypoint counts.
    """
    path = Path(path)
    data = _load_json(path)
    if not (
        isinstance(data, dict)
        and isinstance(data.get("images"), list)
        and isinstance(data.get("annotations"), list)
    ):
        hint = " (this looks like a list of detection results)" if isinstance(data, list) else ""
        raise DataError(
            "not a COCO keypoint file: expected an object with 'images' and 'annotations' "
            "lists" + hint,
            path,
        )
    anns = [_annotation(a, i, path) for i, a in enumerate(data["annotations"])]
    cats = _categories(data.get("categories", []), anns, path)
    chosen = _choose(cats, category, path)
    skeleton, warnings = _skeleton(chosen, path)
    samples = _samples(data["images"], path, images)
    dropped = _assign(anns, samples, chosen, path)
    return KeypointSet(skeleton, samples, path, dropped, warnings)


def _assign(anns: list[dict], samples: list[Sample], chosen: list[dict], path: Path) -> dict:
    """Attach each annotation to its image; returns the counts of those left out, by reason."""
    by_id = {s.id: s for s in samples}
    dropped: Counter[str] = Counter()
    chosen_ids = {c["id"] for c in chosen}
    implicit = chosen[0]["id"] is None
    for ann in anns:
        if ann["keypoints"] is None:
            dropped[NO_KEYPOINTS] += 1
        elif not implicit and ann["category_id"] not in chosen_ids:
            dropped[OTHER_CATEGORY] += 1
        elif ann["iscrowd"]:
            dropped[CROWD] += 1
        elif ann["image_id"] not in by_id:
            raise DataError(f"image_id {ann['image_id']!r} is not in 'images'", path, ann["record"])
        else:
            inst = Instance(ann["keypoints"], ann["bbox"], ann["record"], ann["track"])
            by_id[ann["image_id"]].instances.append(inst)
    return dict(dropped)


def _load_json(path: Path) -> object:
    text = read_text(path, "JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"invalid JSON: {err.msg}", path, f"line {err.lineno} column {err.colno}"
        ) from None
    except RecursionError:
        raise DataError("invalid JSON: nested too deeply", path) from None


def _id(value: object, what: str, path: Path, record: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"{what} must be an integer or a string, not {value!r:.40}", path, record)
    return value


def _numbers(
    value: object, what: str, path: Path, record: str, expected: str = "a list of numbers"
) -> np.ndarray:
    """A flat list of JSON numbers as a float64 array; anything else -> DataError."""
    try:
        arr = np.asarray(value) if isinstance(value, list) else None
    except (ValueError, TypeError, OverflowError):
        arr = None
    if arr is None or arr.ndim != 1 or arr.dtype.kind not in "biuf":
        raise DataError(f"'{what}' must be {expected}, not {value!r:.60}", path, record)
    return arr.astype(np.float64)


def _keypoints(value: object, path: Path, record: str) -> np.ndarray:
    """Flat x, y, v numbers, or ``[[x, y, v], ...]`` (MMPose's RHD hand set writes that)."""
    if isinstance(value, list) and value and all(isinstance(t, list) for t in value):
        if all(len(t) == 3 for t in value):
            value = [n for t in value for n in t]
    expected = "a list of numbers or of [x, y, v] triplets"
    return _numbers(value, "keypoints", path, record, expected)


def _annotation(ann: object, index: int, path: Path) -> dict:
    record = f"annotations[{index}]"
    if not isinstance(ann, dict):
        raise DataError("an annotation must be a JSON object", path, record)
    if "id" in ann:
        record = f"annotation id {_id(ann['id'], 'id', path, record)}"
    out = {"record": record, "keypoints": None, "bbox": None, "iscrowd": bool(ann.get("iscrowd"))}
    out["image_id"] = _id(ann.get("image_id"), "image_id", path, record)
    cid = ann.get("category_id")
    out["category_id"] = None if cid is None else _id(cid, "category_id", path, record)
    track = ann.get("track_id")
    out["track"] = None if track is None else str(_id(track, "track_id", path, record))
    if "keypoints" in ann:
        kp = _keypoints(ann["keypoints"], path, record)
        if kp.size == 0 or kp.size % 3:
            raise DataError(
                f"'keypoints' has {kp.size} numbers; expected x, y, v triplets", path, record
            )
        out["keypoints"] = kp.reshape(-1, 3)
    if ann.get("bbox") is not None:
        box = _numbers(ann["bbox"], "bbox", path, record)
        if box.size != 4:
            raise DataError(f"'bbox' has {box.size} numbers; expected x, y, w, h", path, record)
        out["bbox"] = tuple(float(b) for b in box)
    return out


def _categories(raw: object, anns: list[dict], path: Path) -> list[dict]:
    """Keypoint categories: those with a ``keypoints`` field, each with its keypoint count."""
    if not isinstance(raw, list):
        raise DataError("'categories' must be a list", path)
    counts: dict[int | str, Counter] = {}
    for a in anns:
        if a["keypoints"] is not None and isinstance(a["category_id"], (int, str)):
            counts.setdefault(a["category_id"], Counter())[len(a["keypoints"])] += 1
    cats = []
    for i, c in enumerate(raw):
        if not isinstance(c, dict):
            raise DataError("a category must be a JSON object", path, f"categories[{i}]")
        cid = _id(c.get("id"), "id", path, f"categories[{i}]")
        record = f"category id {cid}"
        names = c.get("keypoints")
        if names is None:
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError("'keypoints' must be a list of names", path, record)
        found = counts.get(cid)
        k = len(names) or (found.most_common(1)[0][0] if found else 0)
        cats.append(
            {
                "id": cid,
                "name": str(c.get("name", cid)),
                "names": names,
                "k": k,
                "skeleton": c.get("skeleton") or [],
                "raw": c,
                "record": record,
            }
        )
    if not cats:  # no category names keypoints: one implicit, nameless category
        found = Counter(len(a["keypoints"]) for a in anns if a["keypoints"] is not None)
        k = found.most_common(1)[0][0] if found else 0
        cats.append(
            {
                "id": None,
                "name": "object",
                "names": [],
                "k": k,
                "skeleton": [],
                "raw": {},
                "record": "categories",
            }
        )
    return cats


def _choose(cats: list[dict], category: int | str | None, path: Path) -> list[dict]:
    """The categories to read: the one asked for, or all when they share one keypoint list."""
    listing = "; ".join(f"id {c['id']} {c['name']!r} ({c['k']} keypoints)" for c in cats)
    if category is not None:
        picked = [c for c in cats if category in (c["id"], c["name"], str(c["id"]))]
        if not picked:
            raise DataError(f"no keypoint category {category!r}; the file has: {listing}", path)
        return picked[:1]
    used = [c for c in cats if c["k"] > 0]
    if not used:
        raise DataError("no keypoint category with keypoints (no names, no annotations)", path)
    named = {tuple(c["names"]) for c in used if c["names"]}
    if len({c["k"] for c in used}) > 1 or len(named) > 1:
        raise DataError(
            f"the keypoint categories differ ({listing}); pick one with category=<id or name>",
            path,
        )
    return used


def _skeleton(chosen: list[dict], path: Path) -> tuple[Skeleton, list[str]]:
    """The skeleton of the chosen category, and a warning when edges had to be dropped."""
    cat = next((c for c in chosen if c["names"]), chosen[0])
    k = cat["k"]
    names = tuple(cat["names"]) or tuple(f"kp{i}" for i in range(k))
    raw = cat["raw"]
    try:
        pairs = [(int(a), int(b)) for a, b in cat["skeleton"]]
        edges, warnings = _edges(pairs, k, path, cat)
        flips = raw.get("flip_pairs")
        flips = guess_flip_pairs(names) if flips is None else [(int(a), int(b)) for a, b in flips]
        sigmas = raw.get("sigmas")
        sigmas = None if sigmas is None else [float(s) for s in sigmas]
    except (TypeError, ValueError, OverflowError):
        raise DataError(
            "'skeleton' / 'flip_pairs' must be lists of index pairs, 'sigmas' a list of numbers",
            path,
            cat["record"],
        ) from None
    skeleton = Skeleton(names, tuple(edges), tuple(flips), sigmas)
    try:
        skeleton.validate()
    except DataError as err:
        raise DataError(err.message, path, cat["record"]) from None
    return skeleton, warnings


def _edges(
    pairs: list[tuple[int, int]], k: int, path: Path, cat: dict
) -> tuple[list[tuple[int, int]], list[str]]:
    """0-based edges inside 0..k-1. Edges only draw lines, so those naming a keypoint the
    category lacks (CrowdPose files that carry COCO's 17-keypoint skeleton) are dropped with
    one warning instead of refusing the whole dataset."""
    # The standard is 1-based; a skeleton that uses index 0 can only be 0-based.
    base = 0 if pairs and min(min(p) for p in pairs) == 0 else 1
    inside = [0 <= a - base < k and 0 <= b - base < k for a, b in pairs]
    edges = [(a - base, b - base) for (a, b), ok in zip(pairs, inside, strict=True) if ok]
    bad = [f"[{a}, {b}]" for (a, b), ok in zip(pairs, inside, strict=True) if not ok]
    if not bad:
        return edges, []
    where = f"{path} ({cat['record']} {cat['name']!r})"
    listing = ", ".join(bad)
    return edges, [f"{where}: dropped skeleton edges naming keypoints beyond its {k}: {listing}"]


def _size(value: object, what: str, path: Path, record: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e6:
        raise DataError(f"'{what}' must be a non-negative number, not {value!r:.40}", path, record)
    return int(value)


def _samples(raw: list, path: Path, images: str | Path | None) -> list[Sample]:
    if images is not None:
        roots = [Path(images)]
    else:
        roots = [path.parent, path.parent / "images", path.parent.parent / "images"]
    default = roots[0]
    samples: list[Sample] = []
    seen: dict[int | str, str] = {}
    for i, img in enumerate(raw):
        if not isinstance(img, dict):
            raise DataError("an image entry must be a JSON object", path, f"images[{i}]")
        img_id = _id(img.get("id"), "id", path, f"images[{i}]")
        name = img.get("file_name")
        if not isinstance(name, str) or not name:
            raise DataError("'file_name' must be a non-empty string", path, f"image id {img_id}")
        record = f"image id {img_id} ({name})"
        if img_id in seen:
            raise DataError(f"duplicate image id, also used by {seen[img_id]}", path, record)
        seen[img_id] = name
        width = _size(img.get("width"), "width", path, record)
        height = _size(img.get("height"), "height", path, record)
        file = _find(name, roots, default)
        samples.append(Sample(file, width, height, [], img_id, record))
    return samples


def _find(name: str, roots: list[Path], default: Path) -> Path:
    for i, root in enumerate(roots):
        if path_exists(root / name):
            roots.insert(0, roots.pop(i))  # the next image is most likely there too
            return root / name
    return default / name


def write_coco(kset: KeypointSet, path: str | Path, category: str = "object") -> Path:
    """Write ``kset`` as COCO keypoint JSON; image paths relative to the JSON's folder if inside it.

    Unlabelled keypoints are written as 0, 0, 0. An instance without a box gets the box of its
    labelled keypoints (omitted when none is labelled).
    """
    path = Path(path)
    require_image_files(kset, "COCO JSON")
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.parent.resolve()
    images, annotations = [], []
    for sample, img_id in zip(kset.samples, _image_ids(kset), strict=True):
        entry: dict[str, object] = {"id": img_id, "file_name": _relative(sample.image, root)}
        size = (sample.width, sample.height) if sample.width and sample.height else None
        size = size or image_size(sample.image)
        if size:
            entry["width"], entry["height"] = size
        images.append(entry)
        for inst in sample.instances:
            ann = _write_annotation(inst, len(annotations) + 1, img_id, kset.source)
            annotations.append(ann)
    doc = {
        "info": {"description": "written by keypointer"},
        "images": images,
        "annotations": annotations,
        "categories": [_write_category(kset.skeleton, category)],
    }
    write_text_atomic(path, json.dumps(doc, allow_nan=False))
    return path


def _image_ids(kset: KeypointSet) -> list:
    """The samples' own ids when they are unique integers, else 1..N."""
    ids = [s.id for s in kset.samples]
    if all(isinstance(i, int) and not isinstance(i, bool) for i in ids) and len(set(ids)) == len(
        ids
    ):
        return ids
    return list(range(1, len(ids) + 1))


def _relative(image: Path, root: Path) -> str:
    try:
        return image.resolve().relative_to(root).as_posix()
    except ValueError:
        return image.resolve().as_posix()


def _write_annotation(inst: Instance, ann_id: int, img_id: int | str, source: object) -> dict:
    kp, labelled, box = writable_instance(inst, source)
    ann: dict[str, object] = {"id": ann_id, "image_id": img_id, "category_id": 1, "iscrowd": 0}
    ann["keypoints"] = [v for x, y, vis in kp.tolist() for v in (x, y, int(vis))]
    ann["num_keypoints"] = int(labelled.sum())
    if inst.track:
        ann["track_id"] = int(inst.track) if str(_decimal(inst.track)) == inst.track else inst.track
    if box is not None:
        ann["bbox"] = [float(b) for b in box]
    ann["area"] = float(box[2] * box[3]) if box is not None else 0.0
    return ann


def _decimal(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _write_category(skeleton: Skeleton, name: str) -> dict:
    cat: dict[str, object] = {"id": 1, "name": name, "supercategory": name}
    cat["keypoints"] = list(skeleton.names)
    cat["skeleton"] = [[a + 1, b + 1] for a, b in skeleton.edges]
    cat["flip_pairs"] = [list(p) for p in skeleton.flip_pairs]
    if skeleton.sigmas is not None:
        cat["sigmas"] = list(skeleton.sigmas)
    return cat
