"""PNG plots of a scored test set: ROC curve, precision-recall curve, distance histograms.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so importing this module
selects no global backend and needs no display. Every file is written atomically: a reader sees
the previous file or the new one, whole.

Array conventions are those of avmatch.metrics: labels shape (n,) 0/1 with 1 = genuine,
scores shape (n,) float with larger = more genuine, distances shape (n,) float (score = -distance).
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import precision_recall_curve, roc_curve

from avmatch import metrics
from avprep.atomic import atomic_write

FIGURE_SIZE = (6.0, 5.0)
DPI = 100


def _new_axes():
    """A (figure, axes) pair on its own Agg canvas."""
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot(1, 1, 1)


def _save_png_atomic(figure, path):
    """Writes `figure` as PNG to `path` via a temporary file in the same directory."""
    atomic_write(path, lambda handle: figure.savefig(handle, format="png"))


def save_roc(path, labels, scores):
    """Saves the ROC curve (fpr vs tpr) with the chance diagonal and the EER point marked.

    Title: AUC and the EER (reference rule and interpolated). Raises ValueError for one class.
    """
    area = metrics.auc(labels, scores)
    eer = metrics.eer_reference(labels, scores)
    eer_interp = metrics.eer_interpolated(labels, scores)
    labels = np.asarray(labels).reshape(-1)
    fpr, tpr, _ = roc_curve(labels, np.asarray(scores).reshape(-1))
    figure, axes = _new_axes()
    axes.plot(fpr, tpr, color="tab:blue", label="ROC")
    axes.plot([0.0, 1.0], [0.0, 1.0], color="grey", linestyle="--", label="chance")
    axes.plot([0.0, 1.0], [1.0, 0.0], color="grey", linestyle=":", label="fpr = 1 - tpr")
    axes.plot([eer_interp], [1.0 - eer_interp], "o", color="tab:red", label="EER")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("false positive rate (impostors accepted)")
    axes.set_ylabel("true positive rate (genuine accepted)")
    axes.set_title(f"ROC of {labels.size} pairs: AUC={area:.4f}, EER={100 * eer:.2f}% "
                   f"(interp. {100 * eer_interp:.2f}%)")
    axes.legend(loc="lower right")
    _save_png_atomic(figure, path)


def save_precision_recall(path, labels, scores):
    """Saves the precision-recall curve of the genuine class; title: AP and the genuine share.

    Raises ValueError for one class.
    """
    ap = metrics.average_precision(labels, scores)
    labels = np.asarray(labels).reshape(-1)
    precision, recall, _ = precision_recall_curve(labels, np.asarray(scores).reshape(-1))
    genuine_share = float(np.mean(labels == 1))
    figure, axes = _new_axes()
    axes.step(recall, precision, where="post", color="tab:blue", label="precision-recall")
    axes.axhline(genuine_share, color="grey", linestyle="--", label="chance")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.05)
    axes.set_xlabel("recall (genuine)")
    axes.set_ylabel("precision (genuine)")
    axes.set_title(f"Precision-recall of {labels.size} pairs: AP={ap:.4f} "
                   f"(genuine {100 * genuine_share:.1f}%)")
    axes.legend(loc="lower left")
    _save_png_atomic(figure, path)


def save_distance_histogram(path, labels, distances, bins=50):
    """Saves histograms of genuine and impostor distances on shared bin edges.

    Both classes use the same `bins` edges over the full distance range so their heights compare.
    The title shows the EER (reference rule) when both classes are present.
    """
    labels = np.asarray(labels).reshape(-1)
    distances = np.asarray(distances, dtype=np.float64).reshape(-1)
    if labels.shape != distances.shape or labels.size == 0:
        raise ValueError("labels and distances must be non-empty and of equal length")
    if not np.isfinite(distances).all():
        raise ValueError("distances contain NaN or infinite values")
    edges = np.histogram_bin_edges(distances, bins=bins)
    figure, axes = _new_axes()
    for value, name, color in ((1, "genuine", "tab:green"), (0, "impostor", "tab:red")):
        chosen = distances[labels == value]
        axes.hist(chosen, bins=edges, alpha=0.5, color=color, label=f"{name} ({chosen.size})")
    title = "Distances of genuine and impostor pairs"
    if metrics.has_both_classes(labels):
        title += f": EER={100 * metrics.eer_reference(labels, -distances):.2f}%"
    axes.set_xlabel("distance")
    axes.set_ylabel("pairs")
    axes.set_title(title)
    axes.legend(loc="upper right")
    _save_png_atomic(figure, path)


def save_convergence(path, records, paper_curves=None):
    """Saves test EER (%) per epoch, one panel per variant, one line per selection mode.

    records: experiments.run_record dicts (epochs with a "test" entry are drawn);
    paper_curves: {label: EER (%) per epoch} drawn in grey (dashed, dotted, ...) in every
    panel, for scale.
    """
    variants = list(dict.fromkeys(record["variant"] for record in records))
    columns = min(2, len(variants)) or 1
    rows = -(-len(variants) // columns) or 1
    figure = Figure(figsize=(5.0 * columns, 4.0 * rows), dpi=DPI)
    FigureCanvasAgg(figure)
    for index, variant in enumerate(variants):
        axes = figure.add_subplot(rows, columns, index + 1)
        for style, (label, curve) in zip(("--", ":", "-."), (paper_curves or {}).items()):
            axes.plot(range(1, len(curve) + 1), curve, style, color="0.5", label=label)
        for record in (r for r in records if r["variant"] == variant):
            points = [(row["epoch"], 100 * row["test"]["eer"]) for row in record["epochs"]
                      if row.get("test")]
            if points:
                epochs, eers = zip(*points)
                axes.plot(epochs, eers, "o-", label=record["mode"])
        axes.set_title(variant)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel("test EER (%)")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    figure.tight_layout()
    _save_png_atomic(figure, path)
