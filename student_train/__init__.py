"""Stage two: train a 2D-CNN student from the feature cache alone (never imports ``teacher_extract``)."""
