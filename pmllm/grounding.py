"""Grounded reading: what the frozen models already know about a photo, per taste concept.

The taste code (:mod:`pmllm.taste_text`) says which of ``TASTE_CONCEPTS`` the user likes (+) or dislikes (-). The
personal head learns how a concept looks from training users' ratings, which ties it to the pictures those raters
saw. The grounded term reads each concept off the photo through frozen knowledge instead, so it carries over to
pictures no rater has seen:

* subject concepts (``SUBJECT_CONCEPTS``: animals, food, buildings, ...): the vision encoder's ImageNet-1k class
  probabilities ``p`` (Lite0's own classifier on the mean visual token). Each class name is assigned softly to the
  subject concepts by the frozen sentence encoder, with the rule the reader uses for clauses, both sides phrased as
  captions ("a photo of a tabby" / "a photo of animals"):
  ``a[k] = softmax_c(cos(name_k, concept_c) / CONCEPT_TEMPERATURE)``; evidence ``log(sum_k p_k a[k, c])``.
  ImageNet barely names people, so the people concept (``GROUNDING_FACE_CONCEPT``) also has a second reading:
  ``log(face share + GROUNDING_FACE_FLOOR)`` from OpenCV's frontal-face cascade (:mod:`piaa.faces`); after
  standardisation its evidence is the larger of the two where a face was found (either frozen model seeing people
  is enough), ImageNet's alone where none was (not finding a face is no reading, so it cannot raise the floor).
  ImageNet names no abstract picture either, so the abstract concept (``GROUNDING_UNNAMED_CONCEPT``) has a second
  reading too: how little the classifier can name, the entropy of ``p`` over ``log(classes)``. Both readings are
  weak, and they err on different pictures (look-alike classes; a blurred or unusual photo), so after
  standardisation the concept's evidence is their mean.
* property concepts (``CONCEPT_ATTRIBUTES``: bright, dark, contrast, colour, sharpness, grain, exposure): the measured
  photo statistics (:mod:`piaa.photostats`), signed.
* other concepts (sunsets, symmetry, vintage look, ...): no evidence (0).

Evidence is standardised with a centre/scale per concept (and one each for the face and entropy readings) measured
on the training images (stored in the checkpoint config) and clipped to ``+-GROUNDING_CLIP``. The shift on the
normalised score is

    shift = w_subject * sum_{c subject} code_c z_c + w_property * sum_{c property} code_c z_c

with the two weights fitted in closed form beside the personal head (``pmllm.train_personal``). The direction of
every concept comes from frozen knowledge; only the two magnitudes are learned. An empty text (code 0) gives
exactly no shift. An encoder without an ImageNet head has no subject evidence (nor the entropy reading) but the face
reading; a photo without statistics (only its visual tokens given) no property evidence and no face reading.
:func:`grounding_stats` measures the pixels' part (photo statistics and the face share) of files or PIL images;
:func:`save_extras` / :func:`load_extras` keep a checkpoint's ``grounding.safetensors``. Library module, no entry
point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pmllm import constants as C

EPS = 1e-6  # floor of the subject evidence before the log
GROUNDING_NAME = "grounding.safetensors"  # a grounded checkpoint's class assignment (+ concept-phrase embeddings)


def concept_masks() -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks over ``TASTE_CONCEPTS``: (subject concepts, property concepts)."""
    subject = torch.tensor([c in C.SUBJECT_CONCEPTS for c in C.TASTE_CONCEPTS])
    prop = torch.tensor([c in C.CONCEPT_ATTRIBUTES for c in C.TASTE_CONCEPTS])
    return subject, prop


def class_assignment(text_encoder, class_names: Sequence[str]) -> torch.Tensor:
    """``(classes, len(TASTE_CONCEPTS))``: each class name's soft assignment to the subject concepts (rows sum to
    1 over the subject columns; the other columns are 0)."""
    subject, _ = concept_masks()
    names = [C.GROUNDING_CONCEPT_TEMPLATE.format(c) for c, s in zip(C.TASTE_CONCEPTS, subject.tolist()) if s]
    classes = [C.GROUNDING_CLASS_TEMPLATE.format(k) for k in class_names]
    sim = text_encoder.encode(classes) @ text_encoder.encode(names).T
    out = torch.zeros(len(class_names), len(C.TASTE_CONCEPTS))
    out[:, subject] = torch.softmax(sim.float() / C.CONCEPT_TEMPERATURE, dim=-1)
    return out


def grounding_stats(images, errors: dict[int, str] | None = None, cache=None, progress: bool = False) -> np.ndarray:
    """``(n, len(ATTRIBUTES) + 1)``: the pixel evidence of files or PIL images, :func:`piaa.photostats.photo_stats`
    and then :func:`piaa.faces.face_stats`. With an ``errors`` dict, a file that cannot be decoded gets a NaN row
    and its reason there; with ``errors=None`` it raises :class:`piaa.images.ImageDecodeError`."""
    from piaa.faces import face_stats
    from piaa.photostats import photo_stats

    images = list(images)
    stats = photo_stats(images, errors=errors, cache=cache, progress=progress)
    faces = face_stats(images, errors=errors, cache=cache, progress=progress)
    return np.concatenate([np.asarray(stats, dtype=np.float64), faces[:, None]], axis=1)


def raw_evidence(class_logits: torch.Tensor | None, assign: torch.Tensor | None,
                 stats: np.ndarray | None, n: int) -> torch.Tensor:  # fmt: skip
    """Unstandardised evidence ``(n, len(TASTE_CONCEPTS) + 2)``; NaN where a photo has no evidence of that kind.

    Columns: one per concept, then the face reading, then the entropy reading (the people and abstract concepts'
    second readings, folded into their columns by :func:`standardise`). ``class_logits (n, classes)`` with
    ``assign`` from :func:`class_assignment` give the subject columns and the classifier's entropy over
    ``log(classes)`` (the last column); ``stats (n, len(ATTRIBUTES))`` (:func:`piaa.photostats.photo_stats` order;
    NaN rows for unreadable files) the property columns, and with a further column of face shares
    (:func:`grounding_stats`) the face reading.
    """
    from piaa.photostats import ATTRIBUTES

    subject, prop = concept_masks()
    k = len(C.TASTE_CONCEPTS)
    out = torch.full((n, k + 2), float("nan"))
    out[:, :k][:, ~(subject | prop)] = 0.0
    if class_logits is not None and assign is not None:
        p = torch.softmax(class_logits.float().cpu(), dim=-1)
        out[:, :k][:, subject] = torch.log((p @ assign)[:, subject] + EPS)
        out[:, k + 1] = -(p * torch.log(p.clamp_min(1e-30))).sum(-1) / float(np.log(p.shape[-1]))
    if stats is not None:
        st = torch.as_tensor(np.asarray(stats, dtype=np.float64), dtype=torch.float32)
        st = st.reshape(1, -1) if st.ndim == 1 else st
        if st.ndim != 2 or st.shape[0] != n:
            raise ValueError(f"stats: shape {tuple(st.shape)}, expected one row per photo ({n})")
        if st.shape[1] not in (len(ATTRIBUTES), len(ATTRIBUTES) + 1):
            raise ValueError(f"stats: {st.shape[1]} columns, expected {len(ATTRIBUTES)} (photo_stats) or "
                             f"{len(ATTRIBUTES) + 1} (grounding_stats)")  # fmt: skip
        if st.shape[1] > len(ATTRIBUTES):
            out[:, k] = torch.log(st[:, -1] + C.GROUNDING_FACE_FLOOR)
        for j, concept in enumerate(C.TASTE_CONCEPTS):
            if concept in C.CONCEPT_ATTRIBUTES:
                attr, sign = C.CONCEPT_ATTRIBUTES[concept]
                out[:, j] = sign * st[:, ATTRIBUTES.index(attr)]
    return out


def standardisation(raw: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-column (centre, scale) of training images' raw evidence (each concept, then the two second readings):
    mean and sd over the finite values (0 and 1 for a column without evidence)."""
    centre, scale = [], []
    for col in raw.T:
        v = col[torch.isfinite(col)].double()
        sd = float(v.std()) if len(v) > 1 else 0.0
        centre.append(float(v.mean()) if len(v) else 0.0)
        scale.append(sd if sd > 1e-8 else 1.0)
    return centre, scale


def standardise(raw: torch.Tensor, centre: Sequence[float], scale: Sequence[float]) -> torch.Tensor:
    """``(N, len(TASTE_CONCEPTS))``: ``(raw - centre) / scale`` clipped to ``+-GROUNDING_CLIP``, the face reading
    folded into the people concept (the larger of its two readings) and the entropy reading into the abstract
    concept (the mean of its two readings, taken before the clip); missing evidence (NaN) -> 0.

    ``centre``/``scale`` of a checkpoint fitted before a second reading (one per concept, or one per concept and the
    face reading) ignore raw's columns after them. A photo where no face was found has no face reading (ImageNet's
    stands alone).
    """
    k = len(C.TASTE_CONCEPTS)
    if len(centre) not in (k, k + 1, k + 2) or len(scale) != len(centre):
        raise ValueError(f"grounding centre/scale: {len(centre)}/{len(scale)} entries, expected {k} (one per "
                         f"concept), {k + 1} (and the face reading) or {k + 2} (and the entropy reading)")  # fmt: skip
    raw = raw[:, : len(centre)]
    z = (raw - torch.tensor(centre, dtype=torch.float32)) / torch.tensor(scale, dtype=torch.float32)
    out = z[:, :k].clone()
    if z.shape[1] > k:
        j = C.TASTE_CONCEPTS.index(C.GROUNDING_FACE_CONCEPT)
        none = torch.log(torch.tensor(0.0) + C.GROUNDING_FACE_FLOOR)  # raw_evidence's value for a face share of 0
        face = torch.where(raw[:, k] > none, z[:, k], torch.tensor(float("nan")))
        out[:, j] = torch.fmax(out[:, j], face)  # fmax: a missing reading (NaN) leaves the other one
    if z.shape[1] > k + 1:
        j = C.TASTE_CONCEPTS.index(C.GROUNDING_UNNAMED_CONCEPT)
        pair = torch.stack([out[:, j], z[:, k + 1]], dim=1)
        out[:, j] = torch.nanmean(pair, dim=1)  # a missing reading leaves the other one
    return torch.nan_to_num(out, nan=0.0).clamp(-C.GROUNDING_CLIP, C.GROUNDING_CLIP)


def grounded_terms(code: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``(N, 2)``: per photo, the subject and property sums ``sum_c code_c z_c``.

    ``code``: one profile's code, ``(n,)`` or ``(1, n)``, for every photo; or ``(N, n)``, one code per row of ``z``
    (the training fit's (user, photo) pairs).
    """
    subject, prop = concept_masks()
    c = code.to(z.dtype)
    if c.dim() == 2 and c.shape[0] > 1:
        return torch.stack([(z[:, subject] * c[:, subject]).sum(1), (z[:, prop] * c[:, prop]).sum(1)], dim=1)
    c = c.reshape(-1)
    return torch.stack([z[:, subject] @ c[subject], z[:, prop] @ c[prop]], dim=1)


def grounded_shift(code: torch.Tensor, z: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """The grounded shift ``(N,)`` of the normalised score: :func:`grounded_terms` times the two weights."""
    return grounded_terms(code, z) @ torch.tensor(list(weights), dtype=z.dtype)


def concepts_key(text_encoder: str) -> str:
    """What stored concept-phrase embeddings are made from: the sentence encoder and every phrase (a hash)."""
    import hashlib

    return hashlib.sha1("\n".join([text_encoder, *C.concept_phrases()[0]]).encode()).hexdigest()


def save_extras(path, assign: torch.Tensor, concepts: torch.Tensor | None, key: str) -> None:
    """Write ``grounding.safetensors`` into checkpoint folder ``path``: the class assignment it was fitted with and
    the reader's concept-phrase embeddings (``concepts``; ``key``: :func:`concepts_key`), so neither is re-encoded."""
    from pathlib import Path

    from safetensors.torch import save_file

    tensors = {"class_assignment": assign.detach().float().cpu().contiguous()}
    if concepts is not None:
        tensors["concept_phrases"] = concepts.detach().float().cpu().contiguous()
    save_file(tensors, str(Path(path) / GROUNDING_NAME), metadata={"concept_phrases": key})


def load_extras(path, key: str) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``(class assignment, concept-phrase embeddings or None)`` of checkpoint folder ``path``; None without the
    file. Embeddings made from another ``key`` (:func:`concepts_key`: other phrases or encoder) are not returned."""
    from pathlib import Path

    from safetensors import safe_open

    file = Path(path) / GROUNDING_NAME
    if not file.is_file():
        return None
    with safe_open(str(file), framework="pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safe_open handle, not a dict)
        made_from = (f.metadata() or {}).get("concept_phrases")
    assign = stored.get("class_assignment")
    if assign is None or assign.ndim != 2 or assign.shape[1] != len(C.TASTE_CONCEPTS):
        raise ValueError(f"{file}: needs a class_assignment of shape (classes, {len(C.TASTE_CONCEPTS)})")
    concepts = stored.get("concept_phrases") if made_from == key else None
    return assign.float(), None if concepts is None else concepts.float()
