"""The demo app: describe your taste, upload photos, see them ranked, rate a few, personalize.

Run: ``python -m demo.app`` (``make demo``) and open http://127.0.0.1:7860. Options: ``--port``, ``--host``,
``--pmllm DIR`` (a pmllm checkpoint), ``--taskvec DIR`` (task vectors), ``--no-launch`` (build and exit).

1. *Rank* - the zero-shot scorer (pmllm) ranks the photos from your description alone.
2. *Personalize* - rate a few photos (1-5); the few-shot scorer (taskvec) fits your merging coefficients on those
   ratings and the ensembler blends both predictions (more ratings -> more weight on them).
Everything runs locally on the embedded default models; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from demo.service import DemoService, parse_ratings, rank_order

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXAMPLE_TASTE = "I love warm, colourful pictures of animals and food; dark or blurry shots annoy me."


def _gallery(paths: list[str], scores: np.ndarray, label: str) -> list[tuple[str, str]]:
    order = rank_order(scores)
    return [(paths[i], f"#{r + 1} · {label} {scores[i]:.2f}") for r, i in enumerate(order)]


def build_app(service: DemoService):
    import gradio as gr

    def do_rank(taste: str, age: str, gender: str, photo_exp: str, files, state: dict):
        uploads = [str(f) for f in (files or [])]
        paths = uploads or [str(p) for p in service.sample_photos()]
        profile = service.make_profile(taste, age=age, gender=gender, photography_experience=photo_exp)
        paths, scores, rejected = service.rank(profile, paths)
        refused = "".join(f"\n* {name}: {why}" for name, why in rejected.items())
        if not paths:
            msg = "None of your files could be read as a photo, so nothing was ranked:" + refused
            return [], [], msg, state
        state = {"paths": paths, "zero_shot": scores.tolist(), "profile": profile.to_dict()}
        table = [[Path(p).name, None] for p in paths]
        note = f"Ranked {len(paths)} photos from your description alone (zero-shot, 1–5 scale)."
        if refused:
            note += f"\n\nSkipped {len(rejected)} file(s) that could not be read:" + refused
        read = service.read_taste(profile)
        if read:
            note += "\n\nWhat I read in your words:\n" + "\n".join(f"* {line}" for line in read)
        return _gallery(paths, scores, "predicted"), table, note, state

    def do_personalize(table, state: dict):
        if not state or not state.get("paths"):
            return gr.update(), "Rank some photos first.", state
        paths = state["paths"]
        try:
            rated = parse_ratings(table, [Path(p).name for p in paths])
        except ValueError as err:
            return gr.update(), f"⚠️ {err}", state
        if len(rated) < 2:
            return gr.update(), "Rate at least 2 photos (1–5) in the table, then press Personalize.", state
        blended, info = service.personalize(paths, rated, np.asarray(state["zero_shot"]))
        return _gallery(paths, blended, "blended"), info, state

    with gr.Blocks(title="Personal photo ranking") as app:
        gr.Markdown(
            "# Personal photo ranking\nDescribe your taste, add photos, see them ranked. Rate a few to sharpen it."
        )
        state = gr.State({})
        with gr.Row():
            with gr.Column(scale=1):
                taste = gr.Textbox(label="Your taste, in your words", value=EXAMPLE_TASTE, lines=3, max_length=2000)
                with gr.Accordion("About you (optional)", open=False):
                    age = gr.Dropdown(["", "18-21", "22-25", "26-29", "30-34", "35-40", "41+"], label="Age", value="")
                    gender = gr.Dropdown(["", "female", "male", "other"], label="Gender", value="")
                    photo_exp = gr.Dropdown(
                        ["", "beginner", "competent", "proficient", "expert"], label="Photography experience", value=""
                    )
                files = gr.File(
                    label="Your photos (leave empty for samples)", file_count="multiple", file_types=["image"]
                )
                rank_btn = gr.Button("Rank my photos", variant="primary")
            with gr.Column(scale=2):
                gallery = gr.Gallery(label="Ranked (best first)", columns=4, height=520)
                note = gr.Markdown()
        gr.Markdown("### Rate a few photos (1–5) to personalize")
        table = gr.Dataframe(headers=["photo", "your rating (1-5)"], datatype=["str", "number"], interactive=True)
        pers_btn = gr.Button("Personalize with my ratings")
        rank_btn.click(do_rank, [taste, age, gender, photo_exp, files, state], [gallery, table, note, state])
        pers_btn.click(do_personalize, [table, state], [gallery, note, state])
    return app


def launch_options(host: str = "127.0.0.1", port: int = 7860) -> dict:
    """Keyword arguments for ``app.launch``: local only, and the sample-photo folder may be served."""
    from piaa.models import cache_dir

    return {"server_name": host, "server_port": port, "share": False,
            "allowed_paths": [str(cache_dir() / "demo-samples")]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)))
    ap.add_argument("--pmllm", default=None, help="pmllm checkpoint dir (default: the committed default)")
    ap.add_argument("--taskvec", default=None, help="task-vector dir (default: the committed default)")
    ap.add_argument("--no-launch", action="store_true", help="load models, build the app, run one ranking, exit")
    args = ap.parse_args(argv)
    service = DemoService(pmllm_dir=args.pmllm, taskvec_dir=args.taskvec)
    app = build_app(service)
    if args.no_launch:
        paths = [str(p) for p in service.sample_photos()]
        scores = service.zero_shot(service.make_profile(EXAMPLE_TASTE), paths)
        for name, s in sorted(zip((Path(p).name for p in paths), scores), key=lambda t: -t[1]):
            print(f"{s:5.2f}  {name}")
        return
    print(f"Open http://{args.host}:{args.port} in a browser (Ctrl-C to stop).")
    app.launch(**launch_options(args.host, args.port))


if __name__ == "__main__":
    main()
