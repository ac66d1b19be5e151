"""Dataset adapters, built by name: ``load_dataset("ucf101", root, split="1")``."""

from pipeline.datasets.base import DatasetError, DatasetIndex, VideoRecord
from pipeline.datasets.registry import DATASETS, dataset_names, load_dataset

__all__ = ["DATASETS", "DatasetError", "DatasetIndex", "VideoRecord", "dataset_names", "load_dataset"]
