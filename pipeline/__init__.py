"""Shared core of the HalluciNet pipeline: config, video decoding, datasets, synthetic data, cache."""
