"""Dataset adapters, built by name: ``load_dataset("ucf101", root, split="1")``."""

from pipeline.datasets.base import DatasetError, DatasetIndex, VideoRecord
from pipeline.datasets.registry import DATASETS, load_dataset

__all__ = ["DATASETS", "DatasetError", "DatasetIndex", "VideoRecord", "load_dataset"]
