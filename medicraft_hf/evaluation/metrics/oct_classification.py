"""OCT classification metrics as an `evaluate` module: accuracy, balanced accuracy,
macro-F1, per-class recall and one-vs-rest ROC AUC.

Self-contained on purpose (imports only evaluate, datasets, numpy and scikit-learn) so
that `evaluate.load("/abs/path/to/oct_classification.py")` works offline: the Hub's
`accuracy` / `f1` / `roc_auc` scripts cannot be fetched without a network.

Inputs:
    predictions: per-class probabilities (rows sum to 1), e.g. a softmax over logits;
                 the predicted class is their argmax and they give the AUC.
                 Integer class ids are accepted too (no AUC then).
    references:  integer class ids.
Compute kwargs:
    class_names: names for the per-class keys (`recall_<name>`, `auc_<name>`); default
                 the class ids. Also fixes the number of classes.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score, roc_auc_score

_DESCRIPTION = __doc__
_CITATION = ""
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float` or `list` of `int`): class probabilities or ids.
    references (`list` of `int`): true class ids.
    class_names (`list` of `str`, optional): label vocabulary, in id order.
Returns:
    accuracy, balanced_accuracy, macro_f1, auc_ovr (macro one-vs-rest ROC AUC, None for
    integer predictions or when a class has no positive or no negative reference),
    recall_<class> and auc_<class> for every class.
Examples:
    >>> metric = evaluate.load("/path/to/oct_classification.py")
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[0, 1], class_names=["a", "b"])["accuracy"]
    1.0
"""


class OctClassification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
                ),
                datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            ],
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, class_names=None):
        references = np.asarray(references, dtype=np.int64)
        predictions = np.asarray(predictions)
        scores = predictions.astype(np.float64) if predictions.ndim == 2 else None
        if scores is not None:
            if not np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
                raise ValueError(
                    "oct_classification expects class probabilities whose rows sum to 1; "
                    "apply a softmax to logits first."
                )
            predictions = scores.argmax(axis=1)

        if class_names is None:
            num_classes = scores.shape[1] if scores is not None else int(max(predictions.max(), references.max())) + 1
            class_names = [str(i) for i in range(num_classes)]
        class_names = list(class_names)
        labels = list(range(len(class_names)))
        if scores is not None and scores.shape[1] != len(labels):
            raise ValueError(f"Got {scores.shape[1]} probabilities per row for {len(labels)} classes {class_names}.")
        if references.max(initial=0) >= len(labels) or references.min(initial=0) < 0:
            raise ValueError(f"references must be class ids in [0, {len(labels) - 1}] for classes {class_names}.")

        recalls = recall_score(references, predictions, labels=labels, average=None, zero_division=0)
        result = {
            "accuracy": float(accuracy_score(references, predictions)),
            "balanced_accuracy": float(balanced_accuracy_score(references, predictions)),
            "macro_f1": float(f1_score(references, predictions, labels=labels, average="macro", zero_division=0)),
        }
        for name, recall in zip(class_names, recalls):
            result[f"recall_{name}"] = float(recall)

        # One-vs-rest AUC per class: defined only when the class has positives and negatives.
        aucs = []
        for label, name in zip(labels, class_names):
            positives = references == label
            auc = None
            if scores is not None and 0 < positives.sum() < len(references):
                auc = float(roc_auc_score(positives, scores[:, label]))
                aucs.append(auc)
            result[f"auc_{name}"] = auc
        result["auc_ovr"] = float(np.mean(aucs)) if scores is not None and len(aucs) == len(labels) else None
        return result
