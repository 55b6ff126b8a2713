"""Classification metrics from labels and predictions: pure functions of integer label vectors
and, for the ranking of mistakes, the class probabilities behind the predictions."""

import numpy as np


def confusion_matrix(y, y_pred, n_classes):
    """Counts of (true class, predicted class).

    Parameters
    ----------
    y, y_pred : ndarray of shape (n,), int
        True and predicted class indices, each in ``[0, n_classes)``.
    n_classes : int

    Returns
    -------
    ndarray of shape (n_classes, n_classes), int64: row = true class, column = predicted.
    """
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y), np.asarray(y_pred)), 1)
    return counts


def classification_report(y, y_pred, n_classes):
    """Precision, recall and F1 of each class, and their unweighted (macro) means.

    precision_k = TP_k / predicted_k, recall_k = TP_k / true_k, F1_k = their harmonic mean;
    a ratio with a zero denominator is None (a class never predicted, or absent from ``y``),
    and the means are taken over the classes where it is defined.

    Returns
    -------
    dict: ``classes`` (a list of ``{"class", "precision", "recall", "f1", "support"}``),
    ``macro`` (``{"precision", "recall", "f1"}``) and ``accuracy``.
    """
    C = confusion_matrix(y, y_pred, n_classes)
    tp, predicted, true = np.diag(C), C.sum(axis=0), C.sum(axis=1)  # (k,) each

    def ratio(a, b):
        return float(a / b) if b else None

    rows = []
    for k in range(n_classes):
        p, r = ratio(tp[k], predicted[k]), ratio(tp[k], true[k])
        f1 = None if p is None or r is None else (0.0 if p + r == 0 else 2 * p * r / (p + r))
        rows.append({"class": k, "precision": p, "recall": r, "f1": f1, "support": int(true[k])})

    def mean(key):
        values = [row[key] for row in rows if row[key] is not None]
        return float(np.mean(values)) if values else None

    return {
        "classes": rows,
        "macro": {key: mean(key) for key in ("precision", "recall", "f1")},
        "accuracy": ratio(tp.sum(), C.sum()),
    }


def confident_mistakes(P, y, n=None):
    """The misclassified rows, the most confident first.

    A row is wrong when its most probable class is not its label; its confidence is the
    probability given to that (wrong) class. Ties keep the rows' order.

    Parameters
    ----------
    P : ndarray of shape (n_samples, n_classes)
        Predicted class probabilities.
    y : ndarray of shape (n_samples,), int
        True labels.
    n : int or None, default=None
        Keep at most this many; None keeps every mistake.

    Returns
    -------
    order : ndarray of shape (min(n, n_mistakes),), int64
        Indices of the wrong rows, by decreasing confidence.
    predicted : ndarray of shape (n_samples,), int64
        The predicted class of every row, ``P.argmax(axis=1)``.
    confidence : ndarray of shape (n_samples,), P's dtype
        The probability of the predicted class of every row.
    """
    predicted = P.argmax(axis=1)
    confidence = P[np.arange(len(P)), predicted]
    wrong = np.flatnonzero(predicted != np.asarray(y))
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:n]
    return order, predicted, confidence


def format_classification_report(report):
    """The report as a table, one row per class, then the macro means."""

    def cell(v):
        return "-" if v is None else f"{v:.4f}"

    lines = [f"{'class':>7}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>7}"]
    for row in report["classes"]:
        lines.append(
            f"{row['class']:>7}  {cell(row['precision']):>9}  {cell(row['recall']):>9}  "
            f"{cell(row['f1']):>9}  {row['support']:>7}"
        )
    m = report["macro"]
    lines.append(
        f"{'macro':>7}  {cell(m['precision']):>9}  {cell(m['recall']):>9}  {cell(m['f1']):>9}  "
        f"{sum(row['support'] for row in report['classes']):>7}"
    )
    return "\n".join(lines)
