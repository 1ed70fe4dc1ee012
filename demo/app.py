"""The demo app: describe your taste, upload photos, see them ranked, rate a few, personalize.

Run: ``python -m demo.app`` (``make demo``) and open http://127.0.0.1:7860. Options: ``--port``, ``--host``,
``--db FILE`` (the users' SQLite database; default ``$PIAA_DEMO_DB``, else under the piaa cache dir),
``--pmllm DIR`` (a pmllm checkpoint), ``--taskvec DIR`` (task vectors), ``--no-warm``, ``--no-launch``.

0. *Your name* - the demo remembers you: profile, photos, ratings, ranking and fitted model are kept in the
   database; *Continue as this name* restores them, *Delete my data* removes them (rows and stored photos).
1. *Rank* - the zero-shot scorer (pmllm) ranks the photos from your description alone.
2. *Personalize* - rate a few photos (1-5); the few-shot model of parts (``eval.fewshot``: task vectors, a
   photo-feature ridge and your description) is fitted on those ratings, each part weighted by how well it
   predicts the ratings it did not see. The page shows each part's weight, which photos moved and your
   coefficients per scored database; a photo you rated is shown at your rating.
Everything runs locally on the embedded default models; nothing leaves the machine. A name is not a password:
anyone who can open the page and types your name continues as you (a local, single-machine demo).
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

from demo.service import DemoService, make_profile
from demo.session import Demo, View
from demo.store import DB_ENV, UserStore

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# gradio's queue recomputes a monitoring summary with pandas after every event (and pandas warns about gradio's
# options there); the demo has no monitoring page, so the summary is never recomputed.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(10**9))

EXAMPLE_TASTE = "I love warm, colourful pictures of animals and food; dark or blurry shots annoy me."
AGES = ["", "18-21", "22-25", "26-29", "30-34", "35-40", "41+"]
GENDERS = ["", "female", "male", "other"]
EXPERIENCE = ["", "beginner", "competent", "proficient", "expert"]
HEADERS = ["photo", "your rating (1-5)"]


def taste_figure(alpha: tuple[list[str], list[float]] | None):
    """Bar chart of the user's mean task-vector coefficient per scored database (None without a fitted user)."""
    if not alpha:
        return None
    from matplotlib.figure import Figure

    tasks, values = alpha
    fig = Figure(figsize=(5, 0.5 + 0.45 * len(tasks)), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(tasks[::-1], values[::-1], color=["#d9822b" if v >= 0 else "#4a7ab7" for v in values[::-1]])
    ax.axvline(0, color="0.4", lw=0.8)
    ax.set_xlabel("mean merging coefficient (orange: a taste you share)")
    fig.get_layout_engine().set(h_pad=0.4)  # inches above the bars: gradio's label covers the plot's top edge
    return fig


def import_gradio():
    """``import gradio``, without the type-stub (``.pyi``) regeneration gradio runs for every component class on
    every import (``gradio.component_meta.create_or_modify_pyi``: it parses each component's source file, about
    half of gradio's 4.5 s import on 2 cores, and writes into site-packages). Stubs serve editors, not the app."""
    import sys

    hook = None
    if "gradio" not in sys.modules:
        hook = _NoGradioStubs()
        sys.meta_path.insert(0, hook)
    try:
        import gradio
    finally:
        if hook in sys.meta_path:  # a gradio without that module: leave the finders as they were
            sys.meta_path.remove(hook)
    return gradio


class _NoGradioStubs:
    """Import hook: once ``gradio.component_meta`` has run, its stub writer is a no-op (then the hook removes
    itself). Anything else is left to the normal finders."""

    def find_spec(self, name, path=None, target=None):
        import sys
        from importlib.machinery import PathFinder

        if name != "gradio.component_meta":
            return None
        sys.meta_path.remove(self)
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            if callable(getattr(module, "create_or_modify_pyi", None)):
                module.create_or_modify_pyi = lambda *args, **kwargs: None

        spec.loader.exec_module = exec_module
        return spec


def _choice(value, choices: list[str]) -> str:
    return value if value in choices else ""


def show(view: View, state: dict, keep_form: bool = False) -> tuple:
    """A :class:`View` as the page's outputs: name, the form (unless ``keep_form``), gallery, table, note, plot,
    session state (which user this browser session acts for)."""
    gr = import_gradio()
    import pandas as pd

    state = {**(state or {}), "user": view.user}
    p = view.profile
    form = [gr.update()] * 4 if keep_form or not view.user or not p else [
        p.get("text") or "", _choice(p.get("age"), AGES), _choice(p.get("gender"), GENDERS),
        _choice(p.get("photography_experience"), EXPERIENCE)]  # fmt: skip
    table = pd.DataFrame(view.table or [], columns=HEADERS)
    name = view.user if view.user else gr.update()
    return (name, *form, view.gallery, table, view.note, taste_figure(view.alpha), state)


def build_app(demo: Demo):
    """The Gradio page over :class:`demo.session.Demo` (API names: continue_as, rank, save_ratings, personalize,
    delete)."""
    gr = import_gradio()

    def do_continue(name: str, state: dict):
        return show(demo.continue_as(name), state)

    def do_rank(name: str, taste: str, age: str, gender: str, photo_exp: str, files, state: dict):
        profile = make_profile(taste, age=age, gender=gender, photography_experience=photo_exp)
        uploads = [str(f) for f in (files or [])]
        return (*show(demo.rank(name, profile, uploads), state, keep_form=True), None)

    def do_save(table, state: dict):
        return demo.save_ratings((state or {}).get("user"), table)

    def do_personalize(table, state: dict):
        view = demo.personalize((state or {}).get("user"), table)
        if not view.gallery:  # a refusal: keep what the page shows, say why
            return (gr.update(),) * 7 + (view.note, gr.update(), state)
        return show(view, state, keep_form=True)

    def do_delete(state: dict):
        view = demo.delete((state or {}).get("user"))
        return ("", *show(view, {}, keep_form=True)[1:])

    with gr.Blocks(title="Personal photo ranking", delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            "# Personal photo ranking\nDescribe your taste, add photos, see them ranked. Rate a few to sharpen it. "
            "The demo remembers you by name: come back and press *Continue as*."
        )
        state = gr.State({})
        with gr.Row():
            name = gr.Textbox(label="Your name", placeholder="e.g. Ada", max_length=40, scale=3, elem_id="name")
            cont_btn = gr.Button("Continue as this name", scale=1, elem_id="continue")
            del_btn = gr.Button("Delete my data", variant="stop", scale=1, elem_id="delete")
        with gr.Row():
            with gr.Column(scale=1):
                taste = gr.Textbox(label="Your taste, in your words", value=EXAMPLE_TASTE, lines=3, max_length=2000,
                                   elem_id="taste")  # fmt: skip
                with gr.Accordion("About you (optional)", open=False):
                    age = gr.Dropdown(AGES, label="Age", value="")
                    gender = gr.Dropdown(GENDERS, label="Gender", value="")
                    photo_exp = gr.Dropdown(EXPERIENCE, label="Photography experience", value="")
                files = gr.File(label="Your photos (leave empty for samples)", file_count="multiple",
                                file_types=["image"], elem_id="files")  # fmt: skip
                rank_btn = gr.Button("Rank my photos", variant="primary", elem_id="rank")
            with gr.Column(scale=2):
                gallery = gr.Gallery(label="Ranked (best first)", columns=4, height=520, elem_id="gallery")
                note = gr.Markdown(elem_id="note")
        gr.Markdown("### Rate a few photos (1–5, steps of 0.5) to personalize")
        with gr.Row():
            with gr.Column(scale=2):
                table = gr.Dataframe(headers=HEADERS, datatype=["str", "number"], interactive=True,
                                     static_columns=[0], elem_id="ratings")  # fmt: skip
                pers_btn = gr.Button("Personalize with my ratings", elem_id="personalize")
            with gr.Column(scale=1):
                plot = gr.Plot(
                    label="Your taste resembles these databases (task-vector coefficients)", elem_id="taste-plot"
                )
        view_out = [name, taste, age, gender, photo_exp, gallery, table, note, plot, state]
        # progress as a running time only: the full overlay's animation costs a browser on the same 2 cores (software
        # rendering) about half a core while the server ranks
        busy = {"show_progress": "minimal"}
        cont_btn.click(do_continue, [name, state], view_out, api_name="continue_as", **busy)
        name.submit(do_continue, [name, state], view_out, api_name=False, **busy)
        rank_btn.click(do_rank, [name, taste, age, gender, photo_exp, files, state], [*view_out, files],
                       api_name="rank", **busy)  # fmt: skip
        table.input(do_save, [table, state], [note], api_name="save_ratings")
        pers_btn.click(do_personalize, [table, state], view_out, api_name="personalize", **busy)
        del_btn.click(do_delete, [state], view_out, api_name="delete", **busy)
    return app


def launch_options(host: str = "127.0.0.1", port: int = 7860, store: UserStore | None = None) -> dict:
    """Keyword arguments for ``app.launch``: local only; the sample-photo folder and the user store's photos may be
    served (the gallery shows them; each user's folder is a random token, reached only through that user's rows)."""
    from piaa.models import cache_dir

    allowed = [str(cache_dir() / "demo-samples")] + ([str(store.root)] if store is not None else [])
    return {"server_name": host, "server_port": port, "share": False, "allowed_paths": allowed}


def serve(service: DemoService, store: UserStore, host: str = "127.0.0.1", port: int = 7860, warm: bool = True,
          block: bool = True):  # fmt: skip
    """Build and launch the app; with ``warm`` the models load in a background thread once gradio is imported (the
    first ranking does not wait for lazy loading; two threads importing big packages at once are much slower than one
    after the other, see the README's known gaps). ``block=False`` returns the running app (tests)."""
    import_gradio()  # before the warm-up: two threads importing big packages at once slow each other down a lot
    if warm:
        threading.Thread(target=service.warm, name="demo-warm", daemon=True).start()
    app = build_app(Demo(service, store))
    app.queue(default_concurrency_limit=1)
    app.launch(prevent_thread_lock=not block, quiet=not block, **launch_options(host, port, store))
    return app


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)))
    ap.add_argument("--db", default=None, help=f"the users' SQLite database (default: ${DB_ENV}, else <piaa cache "
                    "dir>/demo/users.sqlite3); photos are kept next to it in <db name>-photos/")  # fmt: skip
    ap.add_argument("--pmllm", default=None, help="pmllm checkpoint dir (default: the committed default)")
    ap.add_argument("--taskvec", default=None, help="task-vector dir (default: the committed default)")
    ap.add_argument("--no-warm", action="store_true", help="load the models on first use instead of at start")
    ap.add_argument("--no-launch", action="store_true", help="load models, build the app, run one ranking, exit")
    args = ap.parse_args(argv)
    service = DemoService(pmllm_dir=args.pmllm, taskvec_dir=args.taskvec)
    store = UserStore(args.db)
    if args.no_launch:
        build_app(Demo(service, store))
        paths = [str(p) for p in service.sample_photos()]
        scores = service.zero_shot(service.make_profile(EXAMPLE_TASTE), paths)
        for name, s in sorted(zip((Path(p).name for p in paths), scores), key=lambda t: -t[1]):
            print(f"{s:5.2f}  {name}")
        return
    print(f"Open http://{args.host}:{args.port} in a browser (Ctrl-C to stop). Users: {store.db}")
    serve(service, store, args.host, args.port, warm=not args.no_warm)


if __name__ == "__main__":
    main()
