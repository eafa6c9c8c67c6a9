"""Several synchronised cameras: calibration, triangulation to 3D and an exact-truth test bed.

Conventions (the same as OpenCV and Anipose, so that either tool reads the other's files):

- A camera maps a world point X to camera coordinates ``R X + t`` (``rvec`` is ``R`` as a
  Rodrigues vector, ``tvec`` is ``t``), then to pixels with its 3x3 matrix K and OpenCV's
  5-coefficient lens distortion (k1, k2, p1, p2, k3).
- Arrays put cameras first: (C, F, K, 2) pixel points of C cameras, F frames, K keypoints;
  3D points are (F, K, 3) in the world's units (those of the calibration board).
- Missing 2D points are NaN.

Modules: :mod:`.cameras` (camera model, calibration.toml), :mod:`.triangulate` (robust
weighted triangulation), :mod:`.calibrate` (board detection, intrinsics, extrinsics, bundle
adjustment), :mod:`.synthetic` (a figure in a box seen by N virtual cameras, board clips).
"""
