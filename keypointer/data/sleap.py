"""SLEAP ``.slp`` labels and predictions, read through sleap-io (the ``sleap`` extra).

Each labelled frame becomes a :class:`Sample` whose ``image`` is the video file and ``frame``
the frame number (the images live inside the video; :meth:`Sample.read` decodes the frame with
OpenCV). A video stored as a folder of images (SLEAP's image sequence) gives one Sample per
image file instead. Frames embedded in the ``.slp`` itself (``.pkg.slp``) are not supported.

Instances: each frame's instances, with ``track`` the SLEAP track's name. A file that holds
any user-labelled instance is read for those only: the predicted instances are what the
labeller corrected or did not check, and SLEAP trains on user labels too (predicted instances
and frames with nothing else are counted in ``KeypointSet.dropped``; frames with no instance
at all stay, as images without animals). A file of predictions only (the output of ``sleap-track``) is read
for its predictions, with a warning. A point SLEAP marks not visible (or NaN) is unlabelled
(v=0); every other point is v=2 (SLEAP has no "occluded but labelled"). Prediction scores
are not kept.

Skeleton: the nodes, edges and symmetries (as flip pairs) of the one skeleton the instances
use; without symmetries, flip pairs are guessed from left/right names as for other formats.

Video paths: SLEAP stores the path the labeller's machine had. It is tried as it is, then
its trailing parts (``a/b/clip.mp4``, ``b/clip.mp4``, ``clip.mp4``) under ``images`` when
given, else under the ``.slp`` file's folder and the folder above it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING

import numpy as np

from keypointer.data.frames import video_info
from keypointer.data.types import Instance, KeypointSet, Sample, path_exists
from keypointer.errors import DataError
from keypointer.skeleton import Skeleton, guess_flip_pairs

if TYPE_CHECKING:  # sleap-io is optional: only its types here
    from sleap_io import Instance as SleapInstance
    from sleap_io import LabeledFrame, Labels, Video

PREDICTED = "predicted instances beside user labels (only user labels are read)"
PREDICTED_FRAMES = "frames with only predicted instances (the file has user labels: not read)"
EMBEDDED = (".slp", ".h5", ".hdf5")


def read_sleap(path: str | Path, images: str | Path | None = None) -> KeypointSet:
    """Read a SLEAP ``.slp`` file (see the module docstring).

    ``images``: folder to look for the videos (or image sequences) in.
    """
    path = Path(path)
    labels = _load(path)
    frames = list(labels.labeled_frames)
    user = any(not _predicted(i) for lf in frames for i in lf.instances)
    skeleton = _skeleton(labels, frames, path)
    videos = {id(v): _video(v, i, path, images) for i, v in enumerate(labels.videos)}
    samples = []
    dropped: Counter[str] = Counter()
    for lf in frames:
        insts = [i for i in lf.instances if not (user and _predicted(i))]
        if lf.instances and not insts:
            dropped[PREDICTED_FRAMES] += 1
            continue
        dropped[PREDICTED] += len(lf.instances) - len(insts)
        file, width, height, vi = videos[id(lf.video)]
        sample = _sample(lf, file, width, height, vi)
        for j, inst in enumerate(insts):
            sample.instances.append(_instance(inst, f"{sample.record}, instance {j}"))
        samples.append(sample)
    warnings = []
    if frames and not user:
        warnings.append(f"{path}: holds only predicted instances; they are read as labels")
    return KeypointSet(skeleton, samples, path, {k: v for k, v in dropped.items() if v}, warnings)


def _load(path: Path) -> Labels:
    try:
        import sleap_io
    except ImportError:
        raise DataError(
            "reading SLEAP .slp files needs sleap-io: pip install 'keypointer[sleap]'", path
        ) from None
    if not path.is_file():
        raise DataError("no such file", path)
    try:
        return sleap_io.load_slp(str(path), open_videos=False)
    except Exception as err:  # noqa: BLE001 - h5py and sleap-io raise many kinds on a bad file
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise DataError(f"not a readable SLEAP file: {reason}", path) from None


def _predicted(inst: SleapInstance) -> bool:
    return type(inst).__name__ == "PredictedInstance"


def _skeleton(labels: Labels, frames: list[LabeledFrame], path: Path) -> Skeleton:
    """The one skeleton the instances use (else the file's only one) as ours."""
    used = list({id(i.skeleton): i.skeleton for lf in frames for i in lf.instances}.values())
    used = used or list(labels.skeletons)
    if not used:
        raise DataError("the file has no skeleton", path)
    if len(used) > 1:
        names = ", ".join(repr(s.name) for s in used)
        raise DataError(
            f"instances use {len(used)} skeletons ({names}); keypointer trains one", path
        )
    sk = used[0]
    names = tuple(sk.node_names)
    flips = [tuple(p) for p in sk.symmetry_inds] or guess_flip_pairs(names)
    skeleton = Skeleton(names, [tuple(e) for e in sk.edge_inds], flips)
    try:
        skeleton.validate()
    except DataError as err:
        raise DataError(err.message, path, f"skeleton {sk.name!r}") from None
    return skeleton


def _video(video: Video, index: int, path: Path, images: str | Path | None) -> tuple:
    """(file or list of image files, width, height, index) of a SLEAP video."""
    name = video.filename
    if isinstance(name, list):  # an image sequence: frame i is image file i
        files = [_find(str(n), path, images) for n in name]
        return files, 0, 0, index
    meta = getattr(video, "backend_metadata", None) or {}
    if meta.get("type") == "HDF5Video" or str(name).lower().endswith(EMBEDDED):
        raise DataError(
            f"video {index} is stored inside an HDF5 file ({PureWindowsPath(name).name}); "
            "keypointer reads frames from video files or image sequences. In SLEAP, export "
            "the labels with the original videos (not as a .pkg.slp)",
            path,
        )
    file = _find(str(name), path, images)
    info = video_info(file) if path_exists(file) else None
    width, height = info[:2] if info else (0, 0)
    return file, width, height, index


def _find(name: str, path: Path, images: str | Path | None) -> Path:
    """The file SLEAP's ``name`` is on this machine (the first guess when none exists)."""
    parts = PureWindowsPath(name).parts  # splits on / and \ alike
    tails = [Path(*parts[i:]) for i in range(len(parts)) if parts[i:] and not _anchor(parts[i])]
    bases = [Path(images)] if images is not None else [path.parent, path.parent.parent]
    candidates = [Path(name.replace("\\", "/"))] + [b / t for b in bases for t in tails]
    return next((c for c in candidates if path_exists(c)), candidates[0])


def _anchor(part: str) -> bool:
    return part in ("/", "\\") or part.endswith((":\\", ":/", ":"))


def _sample(lf: LabeledFrame, file: Path | list[Path], width: int, height: int, vi: int) -> Sample:
    idx = int(lf.frame_idx)
    if isinstance(file, list):
        if not 0 <= idx < len(file):
            raise DataError(f"frame {idx} of image sequence {vi} does not exist", file[0].parent)
        return Sample(file[idx], 0, 0, [], f"{vi}:{idx}", f"video {vi} image {file[idx].name}")
    record = f"video {vi} ({file.name}) frame {idx}"
    return Sample(file, width, height, [], f"{vi}:{idx}", record, frame=idx)


def _instance(inst: SleapInstance, record: str) -> Instance:
    xy = np.asarray(inst.numpy(), dtype=np.float64)  # (K, 2); NaN where not visible
    kp = np.zeros((len(xy), 3))
    seen = np.isfinite(xy).all(1)
    kp[seen, :2], kp[seen, 2] = xy[seen], 2.0
    track = (inst.track.name or None) if inst.track is not None else None
    return Instance(kp, None, record if track is None else f"{record} ({track})", track)
