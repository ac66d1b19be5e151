"""One metrics schema: the names that ``train-student``, ``evaluate-student`` and ``compare-students`` share.

Every figure a run writes to ``metrics.json`` is named here once, with what it means (a comment); the
writers use these names and the report reads them, so a renamed metric breaks in one place.
"""

from __future__ import annotations

# Each group: the names, in report order, with what each means.

CLASSIFICATION = (
    "video_top1",  # top-1 accuracy of each video's class probabilities averaged over its anchors
    "clip_top1",  # top-1 accuracy per anchor frame
    "video_top5",  # top-5 accuracy per video
    "clip_top5",  # top-5 accuracy per anchor frame
)
REGRESSION = (
    "spearman",  # Spearman's rho between each video's mean predicted score and its true score
    "pearson",  # Pearson's r, per video
    "mae",  # mean absolute error of the video scores (lower is better)
    "clip_spearman",  # Spearman's rho per anchor frame
)
FIDELITY = (
    "fidelity_cosine",  # mean cosine similarity of hallucinated and teacher features
    # R² of hallucinated vs teacher features against the train-set mean feature (0: no better
    # than always predicting that mean; negative: worse)
    "fidelity_r2",
    "mean_feature_cosine",  # fidelity_cosine of the predictor that always outputs the train-set mean feature
    "mean_feature_r2",  # fidelity_r2 of that mean-feature predictor (0 by construction: the reference)
)
TEACHER = (
    "teacher_clip_top1",  # the teacher's own top-1 per clip, from its cached logits
    "teacher_video_top1",  # the teacher's own top-1 per video, from its cached logits
)
COST = (
    "cost_gflops",  # GFLOPs of one student prediction (one frame)
    "cost_latency_ms",  # median latency of one student prediction on the training device
)

#: The figure a task is judged by.
HEADLINE = {"classification": "video_top1", "regression": "spearman"}

#: The figures a run's DVCLive ``metrics.json`` holds, so ``dvc exp show`` lists them: those that
#: tell runs apart. The teacher's and the mean-feature predictor's are the cache's (the same in every
#: run), and latency is timing noise; ``metrics.json`` in the run folder keeps them all.
EXPERIMENT = (*CLASSIFICATION, *REGRESSION, *FIDELITY[:2], "cost_gflops")

#: Per-epoch columns of ``log.csv`` and the metric each copies from the evaluation.
EPOCH_COLUMNS = {"eval_top1": "clip_top1", "eval_spearman": "clip_spearman", "eval_fidelity_cosine": "fidelity_cosine"}
