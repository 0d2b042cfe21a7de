"""Image to features: reading radiographs, preprocessing, the encoder, and ranking.

Depends on nothing else in the project; `index`, `training` and `api` build on it.
"""
