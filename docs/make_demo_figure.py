"""The README's face figure: held-out voices of a demo run, the faces drawn from them, the true faces.

Run on a demo folder made from photos that may be published (the README's figure):

    s2f demo --sources public-domain --out runs/public-domain
    python docs/make_demo_figure.py runs/public-domain docs/images/demo_faces.png

Rows alternate between women and men (by the gender the world records), the first held-out
speakers of each by id, so the figure shows what the model does for both rather than whichever
speakers a random draw picks; the columns are those of the report's face grid.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image

from s2f import Speech2Face
from s2f.eval.data import decode_faces, load_held_out, predict_embeddings
from s2f.eval.metrics.demographics import metadata_genders
from s2f.eval.metrics.retrieval import choose_gallery, nearest_gallery
from s2f.eval.report.figures import face_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="a folder written by s2f demo (model/ and shards/)")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--per-gender", type=int, default=3, help="rows for each gender")
    parser.add_argument("--neighbours", type=int, default=3, help="nearest gallery faces shown per voice")
    options = parser.parse_args()

    model = Speech2Face.from_pretrained(options.demo / "model")
    held = load_held_out(options.demo / "shards", "test")
    genders = metadata_genders(held.metadata)
    if genders is None:
        raise SystemExit(f"{options.demo / 'shards'}: the clips record no gender; this figure picks rows by it")
    gallery_of = choose_gallery(held.clip_ids, held.speaker_ids)
    gallery_rows = list(gallery_of.values())
    predicted = predict_embeddings(model, held.audio, model.clip_seconds)
    drawn = decode_faces(model.draw, predicted, model.device)
    nearest = nearest_gallery(predicted, held.embeddings[gallery_rows], options.neighbours)

    by_gender = {g: [c for c in gallery_rows if genders[c] == g][: options.per_gender] for g in ("female", "male")}
    order = [clip for pair in zip(by_gender["female"], by_gender["male"], strict=False) for clip in pair]
    speakers = list(gallery_of)
    rows = [
        {
            "speaker": f"{held.speaker_ids[clip]} ({genders[clip][0]})",
            "audio": held.audio[clip],
            "true": held.faces[clip],
            "predicted": drawn[clip],
            "neighbours": [
                (held.faces[gallery_rows[g]], speakers[g], speakers[g] == held.speaker_ids[clip])
                for g in nearest[clip].tolist()
            ],
        }
        for clip in order
    ]
    options.out.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours keep the faces as they look and the file at a third of its size in the repository.
    picture = Image.open(io.BytesIO(face_grid(rows, model.sample_rate))).convert("RGB")
    picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(options.out, optimize=True)
    print(f"wrote {options.out} ({len(rows)} voices)")


if __name__ == "__main__":
    main()
