"""Time series of predictions from video: smoothing, outlier flags and identity tracking.

Pure functions on arrays: frames along the first axis, (T, K, 2) keypoints in image pixels,
(T, K) scores, (T,) times in seconds. Nothing here reads video or runs a model.
"""
