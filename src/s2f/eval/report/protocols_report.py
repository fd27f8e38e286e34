"""The report's sections for the field's protocols (SF2F, Wen et al., attribute-only baseline, independent
evaluator, identity score), and their lines of the plain-text summary."""

from __future__ import annotations

import html
from typing import Any

from ..field_protocols import VARIANT_WORDS
from .report_parts import pct, protocol_note, table

__all__ = ["FIELD_SECTION_TITLES", "attribute_columns", "field_sections", "field_summary_lines"]

FIELD_SECTION_TITLES = (
    "Identity-mean galleries (SF2F protocol)",
    "1:2 matching (Wen et al. protocol)",
    "Attribute-only baseline",
    "Identity score",
    "Independent evaluator",
)
"""The headings of the sections :func:`field_sections` writes, in order."""

FACE_SETS = {
    "true": "true faces (reference)",
    "voice": "embeddings predicted from the voice (no face drawn)",
    "f2f": "faces decoded from the true embeddings (F2F), re-embedded",
    "s2f": "faces decoded from the voices (S2F), re-embedded",
    "attribute_only_gender": "attribute-only: the gender mean",
    "attribute_only_gender_age": "attribute-only: the gender and age-band mean",
}


def _heading(index: int) -> str:
    return f"<h2>{html.escape(FIELD_SECTION_TITLES[index])}</h2>"


def _skipped(index: int, reason: str) -> str:
    return _heading(index) + f'<p class="skipped">Skipped: {html.escape(reason)}.</p>'


def _spread(values: dict[str, Any], name: str, draws: int) -> str:
    return pct(values[name]) + (f" +/- {100 * values[name + '_std']:.2f}" if draws > 1 else "")


def _interval(result: dict[str, Any]) -> str:
    if "accuracy" not in result:
        return "skipped"
    return f"{pct(result['accuracy'])} [{pct(result['ci_low'])}, {pct(result['ci_high'])}] ({result['pairs']} pairs)"


def attribute_columns(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The attribute-only baseline's variants by column title (empty when the baseline did not run)."""
    variants = metrics.get("attribute_baseline", {}).get("variants", {})
    return {f"attribute-only: {v['labels']}": v for v in variants.values()}


def _galleries_section(metrics: dict[str, Any]) -> str:
    section = metrics["identity_galleries"]
    parts = [_heading(0), protocol_note(f"{section['protocol']}. Source: {section['source']}.")]
    attribute = section["attribute_only"]
    for key, result in section["model"].items():
        size, draws = result["gallery_size"], result["distinct_draws"]
        ks = [int(name[2:]) for name in result["cos"] if name.startswith("R@") and not name.endswith("_std")]
        rows = []
        for k in ks:
            row = [f"R@{k}", f"{pct(k / size)} (= {k}/{size})"]
            row += [_spread(result[m], f"R@{k}", draws) for m in ("cos", "l1", "l2")]
            row += [_spread(attribute[v]["cos"], f"R@{k}", draws) for v in attribute]
            rows.append(row)
        header = ["K", "chance K/N", "ours cos", "ours L1", "ours L2"]
        header += [f"attribute-only ({VARIANT_WORDS[v]}), cos" for v in attribute]
        similarity = result["similarity"]
        parts.append(
            f"<h3>{key} of voice: galleries of {size} identities, {result['queries_per_draw']:.0f} queries per draw, "
            f"{draws} distinct draw{'s' if draws > 1 else ''}</h3>"
            + table(header, rows)
            + f"<p>Closeness to the own identity's mean: cosine {similarity['cos']:.3f}, L1 {similarity['l1']:.3f}, "
            f"L2 {similarity['l2']:.3f} (unit vectors).</p>"
        )
    return "".join(parts)


def _matching_section(metrics: dict[str, Any]) -> str:
    section = metrics["matching"]
    rows = [
        [f"ours, {key}", _interval(result["all"]), _interval(result["same_gender"])]
        for key, result in section["model"].items()
    ]
    rows += [
        [f"attribute-only: {VARIANT_WORDS[variant]}", _interval(result["all"]), _interval(result["same_gender"])]
        for variant, result in section["attribute_only"].items()
    ]
    rows.append(["chance", pct(section["chance"]), pct(section["chance"])])
    first = next(iter(section["model"].values()))["same_gender"]
    note = f"<p>Same-gender variant skipped: {html.escape(first['skipped'])}.</p>" if "skipped" in first else ""
    return (
        _heading(1)
        + protocol_note(f"{section['protocol']}. Source: {section['source']}.")
        + table(["predictor", "all impostors: accuracy [95% CI]", "same-gender impostors: accuracy [95% CI]"], rows)
        + note
    )


def _attribute_section(metrics: dict[str, Any]) -> str:
    section = metrics["attribute_baseline"]
    if "skipped" in section:
        return _skipped(2, section["skipped"])
    variants = section["variants"]
    groups = [
        [v["labels"], ", ".join(f"{label}: {n}" for label, n in v["training_speakers_per_label"].items()),
         str(v["fallback_clips"])]
        for v in variants.values()
    ]  # fmt: skip
    comparison = section["comparison"]
    rows = []
    for key, first in next(iter(comparison.values())).items():
        as_text = (lambda x: f"{x:.2f}") if key == "angle_deg" else pct
        row = [first["figure"], as_text(first["model"])]
        row += [as_text(comparison[v][key]["baseline"]) if key in comparison[v] else "n/a" for v in comparison]
        rows.append([*row, f"{first['better']} is better"])
    header = ["figure (longest input)", "ours", *[f"attribute-only: {variants[v]['labels']}" for v in comparison]]
    return (
        _heading(2)
        + protocol_note(f"{section['protocol']}. Source: {section['source']}.")
        + table(["labels", "training speakers per label", "held-out clips without a label (overall mean)"], groups)
        + table([*header, ""], rows)
        + f'<p class="verdict">{html.escape(section["verdict"])}</p>'
    )


def _identity_score_rows(section: dict[str, Any]) -> list[list[str]]:
    true = section["scores"].get("true", {}).get("mean")
    rows = []
    for name, score in section["scores"].items():
        ratio = f"{score['mean'] / true:.2f}" if true else "n/a"
        rows.append([FACE_SETS.get(name, name), f"{score['mean']:.2f} +/- {score['std']:.2f}", ratio])
    rows.append(["chance (no identity information)", "1.00", "n/a"])
    return rows


def _identity_score_section(metrics: dict[str, Any]) -> str:
    section = metrics["identity_score"]
    return (
        _heading(3)
        + protocol_note(
            f"In the spirit of SF2F's VGGFace score, in {section['space']} space: {section['definition']}. The scores "
            "are not comparable with published VGGFace scores (a classifier over 8,631 VGGFace2 identities)."
        )
        + table(["faces", "identity score", "relative to the true faces"], _identity_score_rows(section))
    )


def _independent_section(metrics: dict[str, Any]) -> str:
    section = metrics["independent_evaluator"]
    if "skipped" in section:
        return _skipped(4, section["skipped"])
    rows = []
    for name, entry in section["faces"].items():
        gallery = entry["galleries"]
        recall = ", ".join(
            f"R@{k} {pct(gallery['cos'][f'R@{k}'])} ({pct(k / gallery['gallery_size'])})"
            for k in (1, 5, 10)
            if f"R@{k}" in gallery["cos"]
        )
        mismatched = "n/a" if entry["mismatched_cos"] is None else f"{entry['mismatched_cos']:.3f}"
        row = [FACE_SETS.get(name, name), f"{entry['similarity']['cos']:.3f}", mismatched, recall]
        row += [_interval(entry["matching"]), _interval(entry.get("matching_same_gender", {}))]
        rows.append(row)
    header = ["faces", "cos to own identity mean", "cos to others' (chance)", "galleries: R@K (chance)", "1:2",
              "1:2, same gender"]  # fmt: skip
    return (
        _heading(4)
        + protocol_note(section["protocol"])
        + f"<p>Network: <b>{html.escape(section['network'])}</b> ({section['embed_dim']}-D).</p>"
        + table(header, rows)
        + "<h3>Identity score in the evaluator's space</h3>"
        + table(
            ["faces", "identity score", "relative to the true faces"], _identity_score_rows(section["identity_score"])
        )
    )


def field_sections(metrics: dict[str, Any]) -> str:
    """Every section of the field's protocols, as HTML (each titled by :data:`FIELD_SECTION_TITLES`)."""
    if "identity_galleries" not in metrics:
        return ""
    return "".join(
        (
            _galleries_section(metrics),
            _matching_section(metrics),
            _attribute_section(metrics),
            _identity_score_section(metrics),
            _independent_section(metrics),
        )
    )


def field_summary_lines(metrics: dict[str, Any]) -> list[str]:
    """The summary's lines for the field's protocols, at the longest input."""
    if "identity_galleries" not in metrics:
        return []
    longest = metrics["seconds"][-1]
    gallery = metrics["identity_galleries"]["model"][longest]
    size = gallery["gallery_size"]
    recalls = ", ".join(f"R@{k} {pct(gallery['cos'][f'R@{k}'])}" for k in (1, 10) if f"R@{k}" in gallery["cos"])
    lines = [f"  identity-mean galleries of {size} ({longest} cos): {recalls} (chance {pct(1 / size)}, R@1)"]
    matching = metrics["matching"]["model"][longest]
    line = f"  1:2 matching {longest}: {_interval(matching['all'])}"
    if "accuracy" in matching["same_gender"]:
        line += f"; same gender {pct(matching['same_gender']['accuracy'])}"
    lines.append(line + " (chance 50.00%)")
    attribute = metrics["attribute_baseline"]
    lines.append("  attribute-only baseline: " + attribute.get("verdict", f"skipped ({attribute.get('skipped')})"))
    scores = metrics["identity_score"]["scores"]
    shown = ", ".join(
        f"{name} {scores[name]['mean']:.2f}" for name in ("s2f", "f2f", "voice", "true") if name in scores
    )
    lines.append(f"  identity score (teacher space, 1 = none, {metrics['identity_score']['classes']} = all): {shown}")
    independent = metrics["independent_evaluator"]
    if "skipped" in independent:
        lines.append(f"  independent evaluator: skipped ({independent['skipped']})")
    else:
        s2f = independent["faces"].get("s2f", {})
        if s2f:
            lines.append(
                f"  independent evaluator ({independent['network']}), faces from voices: 1:2 "
                f"{pct(s2f['matching']['accuracy'])}, R@1 {pct(s2f['galleries']['cos']['R@1'])}"
            )
    return lines
