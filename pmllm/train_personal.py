"""Fit pmllm's bilinear personal head (:class:`pmllm.fusion.PersonalHead`) on top of a trained checkpoint.

    python -m pmllm.train_personal --base pmllm/checkpoints/default --ratings WORLD/ratings \\
        --users-from WORLD/folds.json --fold 0 --out runs/pmllm-personal [--rank 8] [--views 8]

Everything the head sees is frozen, so it is precomputed once: the pooled profile representation of every
training user (the full profile plus ``--views`` randomly coarsened views, :func:`pmllm.train.coarsen`) and the
mean frozen visual token of every photo. The head is then fitted full-batch (AdamW) to each training user's
*personal residual*: their score minus the leave-one-out mean score of the photo over the other training users,
centred per user (only the within-user ordering matters). The base checkpoint (projectors, fusion modules) is
unchanged; the output checkpoint holds it plus the head.

``--input fields`` (the mode of the default checkpoint) feeds the head the encoded structured profile fields
(:func:`pmllm.fusion.encode_fields`) instead of the LLM's pooled state, fits it in closed form (ridge on fields x
a whitened PCA of the photo features, PCA size and alpha chosen on the validation split below) and converts the
solution exactly into the bilinear head; an empty profile encodes as zeros and gets exactly no shift.

Hyper-parameters (weight decay, number of iterations; in fields mode PCA size and ridge alpha) are chosen on a
validation split of the *training* users (``--val-frac``), scored by mean per-user SROCC of (photo mean over the
other training users + head); then the head is refitted on all training users with the chosen values.
Test users of the fold are never read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from piaa.features import feature_cache_dir
from piaa.schema import RatingsTable, SchemaError
from piaa.worlds import users_of_fold
from pmllm.fusion import PersonalHead, encode_fields, fields_vocab
from pmllm.model import PMLLM
from pmllm.train import calibrate_reader, coarsen, visual_tokens_for


def profile_bank(model: PMLLM, table: RatingsTable, users: list[str], views: int, seed: int) -> torch.Tensor:
    """``(U, 1 + views, d_model)`` pooled profile representations: full profile, then coarsened views."""
    from tqdm.auto import tqdm

    out = []
    with torch.no_grad():
        for k, u in enumerate(tqdm(users, desc="profiles")):
            rng = np.random.default_rng([seed, k])
            full = table.profile(u)
            profs = [full] + [coarsen(full, rng) for _ in range(views)]
            out.append(torch.cat([model.prefix_state(model.prompt(p)).pooled.float().cpu() for p in profs]))
    return torch.stack(out)


def _mean_srocc(pred: np.ndarray, y: np.ndarray, rows_user: np.ndarray) -> float:
    vals = []
    for u in np.unique(rows_user):
        m = rows_user == u
        if np.std(pred[m]) > 0 and np.std(y[m]) > 0:
            vals.append(spearmanr(pred[m], y[m]).statistic)
    return float(np.mean(vals))


def fit_head(head: PersonalHead, bank: torch.Tensor, vmean: torch.Tensor, ru: np.ndarray, ri: np.ndarray,
             resid: np.ndarray, *, iters: int, lr: float, wd: float, seed: int, p_full: float = 0.4,
             on_iter=None) -> PersonalHead:  # fmt: skip
    """Full-batch fit of ``head`` to per-user-centred residuals (rows: user ``ru``, image ``ri``)."""
    g = torch.Generator().manual_seed(seed)
    ru_t, ri_t = torch.as_tensor(ru), torch.as_tensor(ri)
    target = torch.as_tensor(resid, dtype=torch.float32)
    n_users = bank.shape[0]
    counts = torch.bincount(ru_t, minlength=n_users).clamp(min=1).float()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=wd)
    for it in range(iters):
        view = torch.randint(1, bank.shape[1], (n_users,), generator=g) if bank.shape[1] > 1 else None
        if view is not None:
            view[torch.rand(n_users, generator=g) < p_full] = 0
        else:
            view = torch.zeros(n_users, dtype=torch.long)
        p = bank[torch.arange(n_users), view]
        a = head.p_proj(head.p_norm(p))
        b = head.v_proj(head.v_norm(vmean))
        d = head.gain * (a[ru_t] * b[ri_t]).sum(-1) / a.shape[-1] ** 0.5
        d = d - (torch.zeros(n_users).index_add_(0, ru_t, d) / counts)[ru_t]
        loss = ((d - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_iter is not None:
            on_iter(it + 1, loss.item())
    return head


def residuals(table: RatingsTable, fit_users: list[str], rows: np.ndarray, scale_range: float):
    """Personal residuals (normalised by the scale range) w.r.t. the photo mean over ``fit_users`` (leave-one-out
    for a fit user), centred per user; plus that mean, per row."""
    r = table.ratings
    fit = r[r["user"].isin(fit_users)]
    s, c = fit.groupby("image")["score"].sum(), fit.groupby("image")["score"].count()
    sub = r.loc[rows]
    own = sub["user"].isin(fit_users).to_numpy()
    ssum = s.reindex(sub["image"]).fillna(0).to_numpy() - np.where(own, sub["score"].to_numpy(), 0)
    cnt = c.reindex(sub["image"]).fillna(0).to_numpy() - own
    mean = np.where(cnt > 0, ssum / np.maximum(cnt, 1), float(fit["score"].mean()))
    res = (sub["score"].to_numpy() - mean) / scale_range
    res = res - sub.assign(x=res).groupby("user")["x"].transform("mean").to_numpy()
    return res.astype(np.float32), mean


class UserSplit:
    """The training users split into fit / validation users (``val_frac``, seeded), with what both head-fitting
    modes need: rows (user index ``u``, image index ``i``) and residuals of the fit users, and the validation users'
    photo means (over the fit users) and scores. Test users are not part of ``users``."""

    def __init__(self, table: RatingsTable, users: list[str], img_index: dict[str, int], val_frac: float, seed: int):
        self.table, self.users, self.img_index = table, users, img_index
        self.scale_range = table.scale.max - table.scale.min
        self._uidx = {u: k for k, u in enumerate(users)}
        order = list(np.random.default_rng(seed).permutation(users))
        n_val = max(1, int(round(val_frac * len(users))))
        self.val_users, self.fit_users = sorted(order[:n_val]), sorted(order[n_val:])
        rows, self.fu, self.fi = self.rows_of(self.fit_users)
        self.f_res, _ = residuals(table, self.fit_users, rows, self.scale_range)
        rows, self.vu, self.vi = self.rows_of(self.val_users)
        _, self.v_mean = residuals(table, self.fit_users, rows, self.scale_range)
        self.vy = table.ratings.loc[rows, "score"].to_numpy()
        self.val_population_mean = _mean_srocc(self.v_mean, self.vy, self.vu)

    def rows_of(self, us: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rating rows of users ``us`` and, per row, the user's and the image's index."""
        r = self.table.ratings
        rows = r.index[r["user"].isin(us)].to_numpy()
        return (rows, np.array([self._uidx[u] for u in r.loc[rows, "user"]]),
                np.array([self.img_index[i] for i in r.loc[rows, "image"]]))  # fmt: skip

    def val_srocc(self, delta: np.ndarray) -> float:
        """Validation users' mean per-user SROCC of photo mean + ``delta`` (normalised shift, one per row)."""
        return _mean_srocc(self.v_mean + delta * self.scale_range, self.vy, self.vu)

    def all_users(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(user index, image index, residual)`` rows of all training users, for the final refit."""
        rows, u, i = self.rows_of(self.users)
        return u, i, residuals(self.table, self.users, rows, self.scale_range)[0]

    def start_log(self) -> dict:
        print(f"validation ({len(self.val_users)} training users held out): photo-mean SROCC "
              f"{self.val_population_mean:.4f}")  # fmt: skip
        return {"val_users": self.val_users, "val_population_mean_srocc": self.val_population_mean, "grid": []}


def _pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and whitening projection ``(k, d)`` of the rows of ``x``."""
    mu = x.mean(0)
    _, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    k = min(k, len(s))
    return mu, vt[:k] / np.maximum(s[:k, None] / np.sqrt(len(x)), 1e-8)


GROUND_ALPHA = 1.0  # ridge penalty of the two grounded weights (the bilinear block takes the alpha grid)
MAX_UNKNOWNS = 46_340  # LAPACK's 32-bit index limit on an n x n normal matrix (n * n < 2**31)


def check_ridge_size(n_fields: int, kv: int) -> None:
    """Refuse a fields ridge too large to solve here (``n_fields * kv + 2`` unknowns), before its normal matrix is
    allocated, naming ``--kv-grid`` (a larger one crashes LAPACK or exhausts memory instead of failing cleanly)."""
    import os

    n_x = n_fields * kv + 2
    need = 2 * 8 * n_x * n_x  # the normal matrix and the solver's copy, float64
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        avail = None
    if n_x > MAX_UNKNOWNS or (avail is not None and need > avail):
        limit = min(MAX_UNKNOWNS, int((avail / 16) ** 0.5)) if avail is not None else MAX_UNKNOWNS
        fit = max(1, (limit - 2) // max(1, n_fields))  # n_fields * fit + 2 unknowns stay within the limit
        raise ValueError(f"--kv-grid {kv}: the fields ridge would have {n_x} unknowns ({n_fields} profile "
                         f"features x {kv} photo components), whose normal matrix needs {need / 2**30:.1f} GiB"
                         + (f" of the {avail / 2**30:.1f} GiB free" if avail is not None else "")
                         + f"; use --kv-grid values of at most {fit}")  # fmt: skip


def ground_terms(codes: np.ndarray, z: np.ndarray, mode: str) -> np.ndarray:
    """``(R, 2)`` grounded terms (:func:`pmllm.grounding.grounded_terms`) of raw taste codes and standardised photo
    evidence, row by row; ``mode="subject"`` zeroes the property column, ``"none"`` both."""
    from pmllm.grounding import grounded_terms

    out = grounded_terms(torch.from_numpy(np.asarray(codes, np.float64)), torch.from_numpy(np.asarray(z, np.float64)))
    return out.numpy() * np.array([mode != "none", mode == "all"], dtype=np.float64)


def fit_fields_ridge(fviews: np.ndarray, vn: np.ndarray, ru: np.ndarray, ri: np.ndarray, resid: np.ndarray, kv: int,
                     alphas: list[float], fit_images: np.ndarray, ground: dict | None = None) -> dict:  # fmt: skip
    """Closed-form ridge ``resid ~ f_u^T W A (v_i - mu) [+ g_ui . w_g]`` over all profile views ``fviews (U, views,
    n)``.

    ``vn``: layer-normed mean visual tokens; ``A, mu``: whitening PCA (``kv`` components) on ``fit_images``.
    ``ground``: ``{"codes": (U, views, concepts) raw taste codes, "z": (images, concepts) evidence, "mode"}``: the two
    grounded terms (:func:`ground_terms`) as two more columns, penalised by :data:`GROUND_ALPHA`.
    Returns ``{"mu", "A", "W": {alpha: ((n, kv), (2,))}}``.
    """
    check_ridge_size(fviews.shape[-1], min(kv, *vn[fit_images].shape))
    mu, a = _pca(vn[fit_images], kv)
    vr = (vn - mu) @ a.T
    n_f, k = fviews.shape[-1], vr.shape[1]
    n_x = n_f * k + 2
    xtx, xty = np.zeros((n_x, n_x)), np.zeros(n_x)
    for view in range(fviews.shape[1]):
        x = (fviews[ru, view][:, :, None] * vr[ri][:, None, :]).reshape(len(ru), -1)
        g = (ground_terms(ground["codes"][ru, view], ground["z"][ri], ground["mode"]) if ground
             else np.zeros((len(ru), 2)))  # fmt: skip
        x = np.concatenate([x, g], axis=1)
        xtx += x.T @ x
        xty += x.T @ resid
    ws = {}
    for al in alphas:
        pen = np.r_[np.full(n_f * k, al), np.full(2, GROUND_ALPHA)]
        sol = np.linalg.solve(xtx + np.diag(pen), xty)
        ws[al] = (sol[:-2].reshape(n_f, k), sol[-2:])
    return {"mu": mu, "A": a, "W": ws}


def grounded_evidence(model: PMLLM, table: RatingsTable, images: list[str], vmean: torch.Tensor,
                      cache_dir: Path | None) -> np.ndarray:  # fmt: skip
    """``(images, concepts)`` standardised grounded evidence of the training images (:mod:`pmllm.grounding`);
    sets the config's grounding centre/scale from them."""
    from pmllm.grounding import grounding_stats, raw_evidence, standardisation, standardise

    logits = model.encoder.class_logits(vmean[:, None, :])
    stats = grounding_stats([table.image_path(i) for i in images], cache=cache_dir, progress=True)
    raw = raw_evidence(logits, model.class_assignment, stats, len(images))
    centre, scale = standardisation(raw)
    model.config.grounding = {"weights": [0.0, 0.0], "centre": centre, "scale": scale}
    return standardise(raw, centre, scale).double().numpy()


def head_from_ridge(w: np.ndarray, a: np.ndarray, mu: np.ndarray) -> PersonalHead:
    """An exact :class:`PersonalHead` ("fields" mode) for ``delta = f^T W A (LN(v) - mu)`` via the SVD of W."""
    u, s, zt = np.linalg.svd(w, full_matrices=False)
    r = len(s)
    head = PersonalHead(w.shape[0], a.shape[1], r, norm_profile=False)
    ps, zs = u * np.sqrt(s), zt.T * np.sqrt(s)  # (n_f, r), (kv, r)
    with torch.no_grad():
        head.p_proj.weight.copy_(torch.as_tensor(ps.T, dtype=torch.float32))
        head.p_proj.bias.zero_()
        vw = zs.T @ a  # (r, d_visual)
        head.v_proj.weight.copy_(torch.as_tensor(vw, dtype=torch.float32))
        head.v_proj.bias.copy_(torch.as_tensor(-(vw @ mu), dtype=torch.float32))
        head.gain.fill_(float(np.sqrt(r)))
    return head


def text_codes(model: PMLLM, table: RatingsTable, users: list[str]) -> np.ndarray:
    """``(U, n_concepts)`` taste codes of the users' free texts; sets the reader's polarity centre/scale (and the
    config's) to the median/sd of the raw polarity over these users' clauses."""
    readings = calibrate_reader(model, [table.profile(u) for u in users])
    return np.stack([r.code.numpy() for r in readings]).astype(np.float64)


def train_fields(args: argparse.Namespace, model: PMLLM, table: RatingsTable, users: list[str],
                 vmean: torch.Tensor, img_index: dict[str, int]) -> tuple[PersonalHead, dict, dict]:  # fmt: skip
    """ "fields" / "fields+text" mode: ridge on [encoded fields, weight * taste code] x photo features;
    hyper-parameters (PCA size, alpha, text weight) chosen on a validation split of the training users."""
    vocab = fields_vocab([table.profile(u) for u in users])
    with_text = args.input == "fields+text"
    tcodes = text_codes(model, table, users) if with_text else None
    fviews = []
    for k, u in enumerate(users):
        rng = np.random.default_rng([args.seed, k])
        full = table.profile(u)
        profs = [full] + [coarsen(full, rng) for _ in range(args.views)]
        rows = [encode_fields(p, vocab).numpy()[0] for p in profs]
        if with_text:
            none = np.zeros_like(tcodes[k])
            rows = [np.concatenate([f, tcodes[k] if p.text else none]) for f, p in zip(rows, profs)]
        fviews.append(np.stack(rows))
    fviews = np.stack(fviews).astype(np.float64)
    n_fields = len(encode_fields(table.profile(users[0]), vocab)[0])
    vn = torch.nn.functional.layer_norm(vmean, vmean.shape[-1:]).double().numpy()
    ground = None
    model.config.grounding = {}  # a base checkpoint's grounded weights belong to its own head
    if with_text and args.grounding != "none":
        cache_dir = None if args.no_cache else feature_cache_dir(args.cache_dir)
        z = grounded_evidence(model, table, table.images, vmean, cache_dir)
        ground = {"codes": fviews[..., n_fields:], "z": z, "mode": args.grounding}

    def weighted(fv: np.ndarray, tw: float) -> np.ndarray:
        out = fv.copy()
        out[..., n_fields:] *= tw
        return out

    for kv in args.kv_grid:  # every grid point checked before the first fit, not minutes into the grid
        check_ridge_size(fviews.shape[-1], min(kv, *vn.shape))
    split = UserSplit(table, users, img_index, args.val_frac, args.seed)
    log = split.start_log()
    # validation views: the full profile, and (with text) the structured fields only and the free text only
    val_views = {"full": fviews[:, 0]}
    if with_text:
        val_views["fields"] = np.concatenate([fviews[:, 0, :n_fields], 0 * fviews[:, 0, n_fields:]], axis=1)
        val_views["text"] = np.concatenate([0 * fviews[:, 0, :n_fields], fviews[:, 0, n_fields:]], axis=1)
    best = None
    for tw in args.text_weights if with_text else [1.0]:
        fw = weighted(fviews, tw)
        for kv in args.kv_grid:
            fit = fit_fields_ridge(fw, vn, split.fu, split.fi, split.f_res, kv, args.alpha_grid, np.unique(split.fi),
                                   ground)  # fmt: skip
            vrv = (vn - fit["mu"]) @ fit["A"].T
            for al, (w, wg) in fit["W"].items():
                res = {}
                for name, fv in val_views.items():
                    d = np.einsum("nf,fk,nk->n", weighted(fv, tw)[split.vu], w, vrv[split.vi])
                    if ground:
                        d = d + ground_terms(fv[split.vu, n_fields:], ground["z"][split.vi], ground["mode"]) @ wg
                    res[name] = split.val_srocc(d)
                crit = float(np.mean(list(res.values())))
                vals = {f"val_{k}": v for k, v in res.items()}
                log["grid"].append({"text_weight": tw, "kv": kv, "alpha": al, **vals, "criterion": crit})
                print(f"text weight {tw:g} kv {kv} alpha {al:g}: val SROCC " +
                      ", ".join(f"{k} {v:.4f}" for k, v in res.items()), flush=True)  # fmt: skip
                if best is None or crit > best[0]:
                    best = (crit, kv, al, tw)
    _, kv, al, tw = best
    print(f"chosen on validation training users: kv {kv}, alpha {al:g}, text weight {tw:g}; refit on all "
          f"{len(users)} users")  # fmt: skip
    au, ai, a_res = split.all_users()
    fit = fit_fields_ridge(weighted(fviews, tw), vn, au, ai, a_res, kv, [al], np.unique(ai), ground)
    w, wg = fit["W"][al]
    if with_text:  # the head sees [fields, text_weight * code]: fold the weight into the config, not into W
        model.config.text_weight = float(tw)
    if ground:
        model.config.grounding["weights"] = [float(v) for v in wg]
        print(f"grounded weights (subject, property): {wg[0]:.4f}, {wg[1]:.4f}")
    head = head_from_ridge(w, fit["A"], fit["mu"])
    return head, vocab, {"kv": kv, "alpha": al, "text_weight": tw, "grounding": args.grounding if ground else "none",
                         "log": log}  # fmt: skip


def stage_one(base_meta: dict, base: str) -> dict:
    """Provenance of the stage-1 weights: the base checkpoint and its command, or, where the base is itself a
    stage-2 checkpoint (its head is replaced), the stage-1 run it recorded, plus the checkpoint the head replaced."""
    if "personal_head" in base_meta:
        return {"base_checkpoint": base_meta.get("base_checkpoint"), "base_command": base_meta.get("base_command"),
                "head_replaced_in": str(base)}  # fmt: skip
    return {"base_checkpoint": str(base), "base_command": base_meta.get("command")}


def train_personal(args: argparse.Namespace) -> Path:
    torch.set_num_threads(args.threads)
    t0 = time.time()
    table = RatingsTable.load(args.ratings)
    users = users_of_fold(args.users_from, args.fold, table)
    model = PMLLM.from_pretrained(args.base)
    base_meta = dict(model.config.meta)
    if base_meta.get("fold") is not None and base_meta.get("users_from"):
        base_train = set(users_of_fold(base_meta["users_from"], int(base_meta["fold"]), table))
        if not base_train <= set(users):
            extra = base_train - set(users)
            raise SchemaError(f"{args.base} was trained on {len(extra)} user(s) outside fold {args.fold}'s training "
                              f"users; use a base checkpoint of the same fold")  # fmt: skip
    images = table.images
    cache_dir = None if args.no_cache else feature_cache_dir(args.cache_dir)
    vmean = visual_tokens_for(model, table, images, cache_dir).float().mean(1)
    img_index = {im: i for i, im in enumerate(images)}
    if args.input in ("fields", "fields+text"):
        head, vocab, info = train_fields(args, model, table, users, vmean, img_index)
        model.personal = head.to(model.device)
        model.config.personal_rank = head.p_proj.out_features
        model.config.personal_input, model.config.personal_vocab = args.input, vocab
        model.config.meta = {
            **base_meta, **stage_one(base_meta, args.base),
            "personal_head": {"input": args.input, "trained_on": str(args.ratings), "users_from": args.users_from,
                              "fold": args.fold, "n_train_users": len(users), "views": args.views,
                              "pca_components": info["kv"], "ridge_alpha": info["alpha"],
                              "text_weight": info["text_weight"] if args.input == "fields+text" else None,
                              "grounding": info["grounding"],
                              "selected_on": "validation split of training users", "seed": args.seed,
                              "seconds": round(time.time() - t0, 1),
                              "command": "python -m pmllm.train_personal " + " ".join(sys.argv[1:])},
        }  # fmt: skip
        model.config.meta.pop("command", None)
        out = model.save_pretrained(args.out)
        (out / "personal_validation.json").write_text(json.dumps(info["log"], indent=2) + "\n")
        return out
    bank = profile_bank(model, table, users, args.views, args.seed)
    split = UserSplit(table, users, img_index, args.val_frac, args.seed)
    d_model, d_vis = bank.shape[-1], vmean.shape[-1]
    log = split.start_log()
    best = None
    checkpoints = sorted({max(1, args.iters * k // 8) for k in range(1, 9)})
    empty_p = _empty_pooled(model)
    for wd in args.wd_grid:
        torch.manual_seed(args.seed)
        head = PersonalHead(d_model, d_vis, args.rank)
        curve = {}

        def on_iter(it, loss, head=head, curve=curve):
            if it in checkpoints:
                with torch.no_grad():
                    d = head(bank[split.vu, 0], vmean[split.vi]).numpy()
                    e = head(empty_p, vmean[split.vi]).numpy()
                curve[it] = (split.val_srocc(d), split.val_srocc(e), loss)

        fit_head(head, bank, vmean, split.fu, split.fi, split.f_res, iters=args.iters, lr=args.lr, wd=wd,
                 seed=args.seed, on_iter=on_iter)  # fmt: skip
        for it, (full, empty, loss) in curve.items():
            log["grid"].append({"wd": wd, "iters": it, "val_full": full, "val_empty": empty, "train_loss": loss})
            print(f"wd {wd:g} iters {it}: val SROCC full {full:.4f} empty {empty:.4f} (train loss {loss:.5f})")
            if best is None or full > best[0]:
                best = (full, wd, it)
    _, wd, iters = best
    print(f"chosen on validation training users: wd {wd:g}, iters {iters}; refit on all {len(users)} users")
    au, ai, a_res = split.all_users()
    torch.manual_seed(args.seed)
    head = PersonalHead(d_model, d_vis, args.rank)
    fit_head(head, bank, vmean, au, ai, a_res, iters=iters, lr=args.lr, wd=wd, seed=args.seed)
    model.personal = head.to(model.device)
    model.config.personal_rank = args.rank
    model.config.grounding = {}  # the pooled head reads no free text: no grounded term
    model.config.meta = {
        **base_meta, **stage_one(base_meta, args.base),
        "personal_head": {"trained_on": str(args.ratings), "users_from": args.users_from, "fold": args.fold,
                          "n_train_users": len(users), "rank": args.rank, "views": args.views, "lr": args.lr,
                          "weight_decay": wd, "iters": iters, "selected_on": "validation split of training users",
                          "seed": args.seed, "seconds": round(time.time() - t0, 1),
                          "command": "python -m pmllm.train_personal " + " ".join(sys.argv[1:])},
    }  # fmt: skip
    model.config.meta.pop("command", None)
    out = model.save_pretrained(args.out)
    (out / "personal_validation.json").write_text(json.dumps(log, indent=2) + "\n")
    return out


def _empty_pooled(model: PMLLM) -> torch.Tensor:
    from piaa.schema import Profile

    with torch.no_grad():
        return model.prefix_state(model.prompt(Profile())).pooled.float().cpu()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pmllm.train_personal", description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="a trained pmllm checkpoint (its fusion modules stay frozen)")
    ap.add_argument("--ratings", required=True)
    ap.add_argument("--users-from", required=True)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--input",
        choices=["pooled", "fields", "fields+text"],
        default="pooled",
        help="pooled: the LLM's pooled profile state (gradient fit); fields: structured fields (ridge); "
        "fields+text: structured fields and the free text's taste code (pmllm.taste_text; ridge)",
    )
    ap.add_argument("--text-weights", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                    help="fields+text: multipliers of the taste code tried on validation")  # fmt: skip
    ap.add_argument("--grounding", choices=["all", "subject", "none"], default="all",
                    help="fields+text: the taste code read off the photo through frozen knowledge (pmllm.grounding): "
                    "subject and property concepts, subject concepts only, or none")  # fmt: skip
    ap.add_argument("--kv-grid", type=int, nargs="+", default=[16, 32, 64], help="fields: photo PCA sizes")
    ap.add_argument("--alpha-grid", type=float, nargs="+", default=[1e3, 3e3, 1e4, 3e4, 1e5], help="fields: ridge")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--views", type=int, default=8, help="coarsened profile views per user (plus the full one)")
    ap.add_argument("--iters", type=int, default=800)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd-grid", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    ap.add_argument("--val-frac", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args(argv)
    if min(args.kv_grid) < 1:
        ap.error(f"--kv-grid: photo PCA sizes must be at least 1, got {min(args.kv_grid)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        out = train_personal(args)
    except (SchemaError, FileNotFoundError, ValueError) as err:
        sys.exit(f"pmllm.train_personal: error: {err}")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
