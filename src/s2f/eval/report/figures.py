"""The report's pictures, drawn with matplotlib (Agg) and returned as PNG bytes."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

__all__ = ["angle_histogram", "confusion_figure", "correlation_figure", "face_grid", "recall_curves"]


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _figure(columns: int = 1, rows: int = 1, size: tuple[float, float] = (4.5, 3.2)) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(rows, columns, figsize=(size[0] * columns, size[1] * rows), squeeze=False)
    return figure, axes


def angle_histogram(angles: dict[str, torch.Tensor], same_speaker: torch.Tensor) -> bytes:
    """Histograms of matched (a voice and its own speaker's faces) and mismatched angles, one panel per length."""
    figure, axes = _figure(len(angles))
    for axis, (key, matrix) in zip(axes[0], angles.items(), strict=True):
        # Bins over the observed range: teacher features often sit within a few degrees of each other.
        low, high = float(matrix.min()), float(matrix.max())
        bins = np.linspace(low - 0.5, high + 0.5, 41)
        axis.hist(matrix[~same_speaker].numpy(), bins=bins, density=True, alpha=0.6, label="other speakers' faces")
        axis.hist(matrix[same_speaker].numpy(), bins=bins, density=True, alpha=0.6, label="own speaker's faces")
        axis.set(title=f"{key} of voice", xlabel="angle to true face embedding (deg)", ylabel="density")
        axis.legend(fontsize=7)
    return _png(figure)


def recall_curves(
    retrieval: dict[str, dict[str, dict[str, float]]],
    baseline: dict[str, Any] | None,
    attributes: dict[str, dict[str, Any]] | None = None,
) -> bytes:
    """R@K against K for each input length and distance, beside the exact chance K / G, the mean face and the
    attribute-only baselines (``{title: variant}`` of ``metrics["attribute_baseline"]``)."""
    figure, axes = _figure(len(retrieval))
    for axis, (key, by_metric) in zip(axes[0], retrieval.items(), strict=True):
        for metric, values in by_metric.items():
            ks = [int(name[2:]) for name in values if name.startswith("R@")]
            axis.plot(ks, [100 * values[f"R@{k}"] for k in ks], marker="o", label=f"{metric}")
        size = next(iter(by_metric.values()))["gallery_size"]
        ks = [int(name[2:]) for name in next(iter(by_metric.values())) if name.startswith("R@")]
        axis.plot(ks, [100 * k / size for k in ks], "k--", label="chance K/G")
        if baseline and "retrieval" in baseline:
            axis.plot(ks, [100 * baseline["retrieval"]["cos"][f"R@{k}"] for k in ks], "k:", label="mean face (cos)")
        for title, variant in (attributes or {}).items():
            axis.plot(ks, [100 * variant["retrieval"]["cos"][f"R@{k}"] for k in ks], "-.", label=f"{title} (cos)")
        axis.set(title=f"{key} of voice, gallery of {int(size)}", xlabel="K", ylabel="R@K (%)", xscale="log")
        axis.set_xticks(ks, [str(k) for k in ks])
        axis.minorticks_off()
        axis.legend(fontsize=7)
    return _png(figure)


def confusion_figure(confusion: list[list[int]], classes: list[str], title: str) -> bytes:
    """A confusion matrix normalised per row (true face's label), with counts in the cells."""
    counts = np.array(confusion, dtype=np.float64)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    figure, axes = _figure(size=(1.0 + 0.8 * len(classes), 0.8 + 0.7 * len(classes)))
    axis = axes[0][0]
    axis.imshow(rates, vmin=0, vmax=1, cmap="Blues")
    for (row, column), rate in np.ndenumerate(rates):
        axis.text(column, row, f"{rate:.2f}\n({int(counts[row, column])})", ha="center", va="center", fontsize=7)
    axis.set_xticks(range(len(classes)), classes, fontsize=7)
    axis.set_yticks(range(len(classes)), classes, fontsize=7)
    axis.set(title=title, xlabel="reconstruction from voice", ylabel="true face")
    return _png(figure)


def correlation_figure(correlations: dict[str, dict[str, Any]], paper: dict[str, float]) -> bytes:
    """Pearson r per craniofacial measurement: ours, our shuffled baseline, and the paper's."""
    names = list(correlations)
    ours = [correlations[n]["r"] if correlations[n]["r"] is not None else np.nan for n in names]
    shuffled = [correlations[n]["shuffled_r"] if correlations[n]["shuffled_r"] is not None else np.nan for n in names]
    figure, axes = _figure(size=(9, 3.2))
    axis = axes[0][0]
    x = np.arange(len(names))
    axis.bar(x - 0.27, ours, 0.27, label="ours (S2F vs F2F)")
    axis.bar(x, shuffled, 0.27, label="ours, shuffled")
    axis.bar(x + 0.27, [paper.get(n, np.nan) for n in names], 0.27, label="paper (Oh et al. 2019)")
    axis.set_xticks(x, [n.replace("_", " ") for n in names], rotation=45, ha="right", fontsize=7)
    axis.axhline(0, color="k", linewidth=0.5)
    axis.set(ylabel="Pearson r")
    axis.legend(fontsize=7)
    return _png(figure)


def face_grid(rows: list[dict[str, Any]], sample_rate: int) -> bytes:
    """Rows of: the voice (spectrogram), the face predicted from it, the true face, the nearest gallery faces.

    Each row dict holds ``audio``, ``speaker``, ``true`` (face crop), ``predicted`` (decoded face or
    None) and ``neighbours``: a list of (face crop, speaker, is_own_speaker).
    """
    has_prediction = any(r["predicted"] is not None for r in rows)
    neighbours = max(len(r["neighbours"]) for r in rows)
    columns = 2 + int(has_prediction) + neighbours
    figure, axes = _figure(columns, len(rows), size=(1.6, 1.6))
    for row_axes, row in zip(axes, rows, strict=True):
        for axis in row_axes:
            axis.set_xticks([])
            axis.set_yticks([])
        audio = np.asarray(row["audio"], dtype=np.float32) / 32768.0
        row_axes[0].specgram(audio, NFFT=400, Fs=sample_rate, noverlap=240, cmap="magma")
        row_axes[0].set_ylabel(str(row["speaker"]), fontsize=7)
        column = 1
        if has_prediction:
            row_axes[column].imshow(row["predicted"])
            column += 1
        row_axes[column].imshow(row["true"])
        column += 1
        for rank, (face, speaker, own) in enumerate(row["neighbours"]):
            axis = row_axes[column + rank]
            axis.imshow(face)
            axis.set_xlabel(f"#{rank + 1} {speaker}", fontsize=6, color="green" if own else "black")
            for spine in axis.spines.values():
                spine.set_color("green" if own else "lightgrey")
                spine.set_linewidth(3 if own else 1)
    titles = ["voice", *(["predicted face"] if has_prediction else []), "true face"]
    titles += [f"gallery #{i + 1}" for i in range(neighbours)]
    for axis, title in zip(axes[0], titles, strict=True):
        axis.set_title(title, fontsize=8)
    return _png(figure)
