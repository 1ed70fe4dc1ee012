"""pmllm's grounded reading (pmllm.grounding): concept evidence from frozen knowledge, its standardisation, the
shift it adds, the head fitting its two weights, and what a user sees on the bundled real photos."""

import json

import numpy as np
import pytest
import torch

from piaa.photostats import ATTRIBUTES
from piaa.schema import Profile
from pmllm import constants as C
from pmllm.grounding import (
    class_assignment,
    concept_masks,
    grounded_shift,
    grounded_terms,
    grounding_stats,
    raw_evidence,
    standardisation,
    standardise,
)


def code_of(**weights: float) -> torch.Tensor:
    code = torch.zeros(len(C.TASTE_CONCEPTS))
    for concept, w in weights.items():
        code[C.TASTE_CONCEPTS.index(concept.replace("_", " "))] = w
    return code


def test_concept_tables_name_known_concepts_and_attributes():
    subject, prop = concept_masks()
    assert not bool((subject & prop).any()) and int(subject.sum()) == len(C.SUBJECT_CONCEPTS)
    assert all(a in ATTRIBUTES and s in (-1.0, 1.0) for a, s in C.CONCEPT_ATTRIBUTES.values())
    assert all(c in C.TASTE_CONCEPTS for c in C.SUBJECT_CONCEPTS + tuple(C.CONCEPT_ATTRIBUTES))
    # every phrase the reader matches names photos once, so "photos" in a clause favours no concept
    assert all(C.concept_phrase(c).count("photo") == 1 for c in C.TASTE_CONCEPTS)


def test_class_assignment_maps_class_names_to_subjects(embedded_text):
    from piaa.data import imagenet_classes

    names = imagenet_classes()
    a = class_assignment(embedded_text, names)
    subject, _ = concept_masks()
    assert a.shape == (1000, len(C.TASTE_CONCEPTS)) and torch.allclose(a[:, subject].sum(1), torch.ones(1000))
    assert float(a[:, ~subject].abs().max()) == 0.0
    top = {names[k]: C.TASTE_CONCEPTS[int(a[k].argmax())] for k in (285, 963, 497, 817, 985)}
    assert top == {"Egyptian cat": "animals", "pizza": "food", "church": "buildings and architecture",
                   "sports car": "cars and vehicles", "daisy": "flowers and plants"}  # fmt: skip


def test_evidence_standardisation_missing_values_and_clipping():
    n = 5
    stats = np.tile(np.arange(n, dtype=np.float64)[:, None], (1, len(ATTRIBUTES)))
    stats[2] = np.nan  # an unreadable file
    raw = raw_evidence(None, None, stats, n)
    subject, prop = concept_masks()
    k = len(C.TASTE_CONCEPTS)
    assert raw.shape == (n, k + 2) and torch.isnan(raw[:, k:]).all()  # no face column, no class logits given
    raw_c = raw[:, : len(C.TASTE_CONCEPTS)]
    assert torch.isnan(raw_c[:, subject]).all() and torch.isnan(raw_c[2, prop]).all()
    j = C.TASTE_CONCEPTS.index("dark photos")
    assert raw[4, j] == -4.0 and raw[4, C.TASTE_CONCEPTS.index("bright photos")] == 4.0
    centre, scale = standardisation(raw)
    z = standardise(raw, centre, scale)
    assert z.shape == (n, len(C.TASTE_CONCEPTS)) and torch.isfinite(z).all()
    assert float(z[2].abs().max()) == 0.0 and float(z[:, subject].abs().max()) == 0.0
    far = standardise(raw * 1e6, centre, scale)
    assert float(far.abs().max()) == C.GROUNDING_CLIP


def test_face_reading_is_folded_into_the_people_concept():
    """The face share is the people concept's second reading: the larger standardised reading wins, a missing one
    (NaN) leaves the other, and a checkpoint fitted without it (one centre per concept) ignores it."""
    n, people = 6, C.TASTE_CONCEPTS.index(C.GROUNDING_FACE_CONCEPT)
    logits = torch.zeros(n, 3)
    logits[1, 0] = 4.0  # photo 1: ImageNet sees the "people" class
    logits[3:5, 1] = 6.0  # photos 3 and 4: ImageNet sees animals, so people even less than photos 0 and 2
    assign = torch.zeros(3, len(C.TASTE_CONCEPTS))
    assign[0, people] = 1.0
    assign[1:, C.TASTE_CONCEPTS.index("animals")] = 1.0
    stats = np.zeros((n, len(ATTRIBUTES) + 1))
    stats[:, -1] = [0.0, 0.0, 0.3, 0.0, 0.0, np.nan]  # photo 2: a large face; photo 5: not measured
    raw = raw_evidence(logits, assign, stats, n)
    centre, scale = standardisation(raw)
    z = standardise(raw, centre, scale)
    assert z.shape == (n, len(C.TASTE_CONCEPTS))
    assert float(z[2, people]) > float(z[0, people]) and float(z[1, people]) > float(z[0, people])  # either reading
    old = standardise(raw, centre[: len(C.TASTE_CONCEPTS)], scale[: len(C.TASTE_CONCEPTS)])
    assert float(old[2, people]) == float(old[0, people])  # before the face reading: photo 2 is like photo 0
    assert float(z[5, people]) == float(old[5, people])  # a missing face reading leaves ImageNet's
    assert torch.equal(z[[0, 1, 3, 4], people], old[[0, 1, 3, 4], people])  # so does finding no face (no floor)
    with pytest.raises(ValueError, match="columns"):
        raw_evidence(None, None, np.zeros((n, 3)), n)


def test_entropy_reading_is_averaged_into_the_abstract_concept():
    """A picture the classifier cannot name (flat probabilities) reads as more abstract than one it names
    confidently, even where the classes matched to "abstract images" say the same of every picture; a checkpoint
    fitted before the entropy reading (one centre per concept and the face reading) ignores it."""
    k, j = len(C.TASTE_CONCEPTS), C.TASTE_CONCEPTS.index(C.GROUNDING_UNNAMED_CONCEPT)
    n = 4
    logits = torch.zeros(n, 10)  # photo 1: flat
    logits[0, 3] = 9.0  # photo 0: one class, confidently
    logits[2, 3] = 3.0  # photo 2: the same class, less sure
    logits[3, 5] = 2.0  # photo 3: less sure still
    assign = torch.zeros(10, k)
    assign[:, C.TASTE_CONCEPTS.index("animals")] = 1.0  # no class is matched to abstract
    raw = raw_evidence(logits, assign, None, n)
    assert torch.allclose(raw[1, k + 1], torch.tensor(1.0)) and float(raw[0, k + 1]) < 0.05
    assert torch.isnan(raw[:, k]).all()  # no face reading without pixel statistics
    centre, scale = standardisation(raw)
    z = standardise(raw, centre, scale)
    before = standardise(raw, centre[: k + 1], scale[: k + 1])
    assert float(before[:, j].abs().max()) == 0.0  # class evidence alone: every photo alike
    assert float(z[1, j]) > float(z[3, j]) > float(z[2, j]) > float(z[0, j])  # the entropy reading orders them
    zc = (raw[:, j] - centre[j]) / scale[j]
    ze = (raw[:, k + 1] - centre[k + 1]) / scale[k + 1]
    assert torch.allclose(z[:, j], ((zc + ze) / 2).clamp(-C.GROUNDING_CLIP, C.GROUNDING_CLIP))  # their mean
    other = torch.ones(k + 2, dtype=torch.bool)
    other[[j, k, k + 1]] = False
    assert torch.equal(z[:, other[:k]], before[:, other[:k]])  # no other concept moves
    with pytest.raises(ValueError, match="entropy reading"):
        standardise(raw, centre + [0.0], scale + [1.0])
    # where the class reading varies too, both count; a photo without an entropy reading keeps its class reading
    assign[5] = 0.0
    assign[5, j] = 1.0  # the class photo 3 leans to is matched to abstract
    raw = raw_evidence(logits, assign, None, n)
    raw[2, k + 1] = float("nan")
    centre, scale = standardisation(raw)
    z = standardise(raw, centre, scale)
    zc = (raw[:, j] - centre[j]) / scale[j]
    ze = (raw[:, k + 1] - centre[k + 1]) / scale[k + 1]
    assert float(zc.std()) > 0.5 and float(zc[3]) > float(zc[1]) > float(zc[0])
    both = [0, 1, 3]
    assert torch.allclose(z[both, j], ((zc[both] + ze[both]) / 2).clamp(-C.GROUNDING_CLIP, C.GROUNDING_CLIP))
    assert float(z[2, j]) == pytest.approx(float(zc[2].clamp(-C.GROUNDING_CLIP, C.GROUNDING_CLIP)))


def test_grounded_shift_follows_the_code_and_is_zero_without_text():
    z = torch.zeros(3, len(C.TASTE_CONCEPTS))
    z[:, C.TASTE_CONCEPTS.index("bright photos")] = torch.tensor([-1.0, 0.0, 2.0])
    z[:, C.TASTE_CONCEPTS.index("animals")] = torch.tensor([3.0, 0.0, 0.0])
    likes_bright = grounded_shift(code_of(bright_photos=0.9), z, [0.5, 0.1])
    assert torch.allclose(likes_bright, torch.tensor([-0.09, 0.0, 0.18]))
    assert torch.equal(grounded_shift(code_of(), z, [0.5, 0.1]), torch.zeros(3))
    terms = grounded_terms(code_of(animals=-1.0, bright_photos=1.0), z)
    assert torch.allclose(terms, torch.tensor([[-3.0, -1.0], [0.0, 0.0], [0.0, 2.0]]))


def test_row_wise_terms_equal_one_code_per_photo_and_the_training_twin():
    from pmllm.train_personal import ground_terms

    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(5, len(C.TASTE_CONCEPTS), generator=gen, dtype=torch.float64)
    z = torch.randn(5, len(C.TASTE_CONCEPTS), generator=gen, dtype=torch.float64)
    rows = grounded_terms(codes, z)
    each = torch.cat([grounded_terms(codes[i], z[i : i + 1]) for i in range(5)])
    assert torch.allclose(rows, each)
    fitted = ground_terms(codes.numpy(), z.numpy(), "subject")
    assert np.allclose(fitted[:, 0], each[:, 0].numpy()) and not fitted[:, 1].any()
    assert not ground_terms(codes.numpy(), z.numpy(), "none").any()


def test_lite0_class_logits_from_tokens_equal_its_classifier(embedded_vision):
    from piaa.photos import bundled_photos

    x = embedded_vision.preprocess([p.image for p in bundled_photos()[:3]])
    with torch.no_grad():
        want = embedded_vision.classify(x)
        got = embedded_vision.class_logits(embedded_vision.encode(x).tokens)
    assert torch.allclose(got, want, atol=1e-4)


def test_train_personal_fits_grounded_weights(tiny_dirs, tiny_table, tmp_path):
    """The tiny table's users like or dislike bright photos and say so; the property weight must come out > 0, an
    empty profile must score as the base model does, and the cached and naive paths must agree with text."""
    from piaa.schema import RatingsTable
    from pmllm.model import PMLLM
    from tests.test_pmllm_personal import fit_personal_head

    fit_personal_head(tiny_dirs, tiny_table, tmp_path, "--input", "fields+text", "--views", "1", "--kv-grid", "2",
                      "--alpha-grid", "1", "--text-weights", "1")  # fmt: skip
    cfg = json.loads((tmp_path / "out" / "pmllm_config.json").read_text())
    g = cfg["grounding"]
    assert len(g["centre"]) == len(g["scale"]) == len(C.TASTE_CONCEPTS) + 2 and g["weights"][1] > 0  # + 2 readings
    assert cfg["meta"]["personal_head"]["grounding"] == "all"
    assert (tmp_path / "out" / "grounding.safetensors").is_file()
    model, plain = PMLLM.from_pretrained(tmp_path / "out"), PMLLM.from_pretrained(tmp_path / "base")
    imgs = [RatingsTable.load(tiny_table / "ratings").image_path(f"img{i:02d}.jpg") for i in range(12)]
    assert np.array_equal(model.score(imgs, profile=Profile()).scores, plain.score(imgs, profile=Profile()).scores)
    text = Profile(text="I love bright photos")
    assert np.abs(model.score(imgs, profile=text, cached=False).scores - model.score(imgs, profile=text).scores
                  ).max() < 1e-4  # fmt: skip


@pytest.fixture(scope="module")
def default_model():
    from pmllm.model import PMLLM

    return PMLLM.from_pretrained()


def test_default_checkpoint_carries_the_class_assignment_it_was_fitted_with(default_model, embedded_text):
    """Scoring never re-encodes the 1000 class names: the checkpoint holds the assignment, equal to a fresh one."""
    from piaa.data import imagenet_classes

    stored = default_model.__dict__.get("_class_assign")
    assert stored is not None and stored.shape == (1000, len(C.TASTE_CONCEPTS))
    assert torch.allclose(stored, class_assignment(embedded_text, imagenet_classes()), atol=1e-5)


def test_default_checkpoint_carries_the_concept_phrase_embeddings(default_model, embedded_text, tmp_path):
    """The reader's concept vocabulary is not re-encoded at load (it held up a new user's first ranking): the
    stored embeddings equal fresh ones; a checkpoint whose phrases changed since it was saved re-encodes them."""
    from safetensors.torch import load_file, save_file

    from pmllm.grounding import GROUNDING_NAME
    from pmllm.model import PMLLM

    phrases = C.concept_phrases()[0]
    stored = default_model.__dict__.get("_concept_emb")
    assert stored is not None and stored.shape[0] == len(phrases)
    assert torch.allclose(stored, embedded_text.encode(phrases).float(), atol=1e-5)
    assert default_model.reader.concepts is stored
    saved = default_model.save_pretrained(tmp_path / "ckpt")
    tensors = load_file(str(saved / GROUNDING_NAME))
    save_file(tensors, str(saved / GROUNDING_NAME), metadata={"concept_phrases": "made from other phrases"})
    again = PMLLM.from_pretrained(saved, llm=default_model.llm, tokenizer=default_model.tokenizer,
                                  encoder=default_model.encoder)  # fmt: skip
    assert again.__dict__.get("_concept_emb") is None and torch.allclose(again.reader.concepts, stored, atol=1e-5)


def test_default_checkpoint_steers_the_bundled_photos_as_a_user_reads_it(default_model):
    """On the 13 photos bundled with scikit-image/-learn/matplotlib: saying you love (vs can't stand) animals moves
    the cat photo up more than the other photos; saying you like bright (vs dark) photos follows brightness."""
    from piaa.photos import bundled_photos
    from piaa.photostats import attributes
    from piaa.stats import srocc

    photos = bundled_photos()
    images = [p.image for p in photos]

    def shift(like: str, dislike: str) -> np.ndarray:
        up = default_model.score(images, profile=Profile(text=like)).scores
        return up - default_model.score(images, profile=Profile(text=dislike)).scores

    animals = shift("I love photos of animals", "I can't stand photos of animals")
    cat = [p.name for p in photos].index("chelsea")
    assert animals[cat] > np.median(animals) and animals[cat] == animals.max()
    light = shift("I like bright, airy photos", "I prefer dark, moody pictures")
    assert srocc(light, [attributes(im)["brightness"] for im in images]) > 0.5
    people = shift("I love portraits of people", "I can't stand photos of people")
    faces = [p.name for p in photos if p.name in ("astronaut", "grace_hopper")]  # the two portraits
    others = [p.name for p in photos if p.content != "people"]
    by = dict(zip([p.name for p in photos], people))
    assert len(faces) == 2 and min(by[n] for n in faces) > max(by[n] for n in others)


def test_grounding_none_drops_a_base_checkpoints_grounded_weights(tiny_dirs, tiny_table, tmp_path):
    """Refitting a grounded checkpoint's head with --grounding none must not keep the old head's grounded term."""
    from tests.test_pmllm_personal import fit_personal_head

    args = ["--input", "fields+text", "--views", "1", "--kv-grid", "2", "--alpha-grid", "1", "--text-weights", "1"]
    fit_personal_head(tiny_dirs, tiny_table, tmp_path / "a", *args)
    grounded = tmp_path / "a" / "out"
    assert json.loads((grounded / "pmllm_config.json").read_text())["grounding"]
    from pmllm.train_personal import main

    main(["--base", str(grounded), "--ratings", str(tiny_table / "ratings"), "--users-from",
          str(tiny_table / "folds.json"), "--out", str(tmp_path / "none"), "--val-frac", "0.25",
          "--cache-dir", str(tiny_table / "cache"), *args, "--grounding", "none"])  # fmt: skip
    cfg = json.loads((tmp_path / "none" / "pmllm_config.json").read_text())
    assert cfg["grounding"] == {} and not (tmp_path / "none" / "grounding.safetensors").exists()
    assert cfg["meta"]["personal_head"]["grounding"] == "none"


def test_face_share_of_real_photos_and_bad_files(tmp_path):
    """OpenCV's frontal-face cascade finds the astronaut's face (scikit-image's portrait) and none in the coffee cup
    or a flat grey picture; an undecodable file is NaN with its reason, and the rest of the batch is measured."""
    from PIL import Image
    from skimage import data

    from piaa.faces import face_fraction, face_stats

    astronaut, coffee = Image.fromarray(data.astronaut()), Image.fromarray(data.coffee())
    assert 0.005 < face_fraction(astronaut) < 0.5
    assert face_fraction(coffee) == 0.0 and face_fraction(Image.new("RGB", (300, 200), (128, 128, 128))) == 0.0
    good, bad = tmp_path / "astronaut.png", tmp_path / "broken.jpg"
    astronaut.save(good)
    bad.write_bytes(b"not a picture")
    errors: dict[int, str] = {}
    out = face_stats([good, bad], errors=errors)
    assert out[0] == pytest.approx(face_fraction(astronaut)) and np.isnan(out[1])
    assert list(errors) == [1] and "broken.jpg" in errors[1]
    both = grounding_stats([good, bad], errors={})
    assert both.shape == (2, len(ATTRIBUTES) + 1) and both[0, -1] == out[0] and np.isnan(both[1]).all()


def test_faces_measured_from_many_threads_in_a_fresh_process():
    """The demo's first ranking measures faces in threads: cv2's loader, imported by two threads at once, used to
    hand one of them a half-built module without the cascade (the ranking failed; the browser test timed out)."""
    import subprocess
    import sys

    code = (
        "from concurrent.futures import ThreadPoolExecutor\nfrom PIL import Image\n"
        "from piaa.faces import face_fraction\nimg = Image.new('RGB', (200, 150), (120, 120, 120))\n"
        "with ThreadPoolExecutor(8) as ex:\n    print(sorted(set(ex.map(lambda _: face_fraction(img), range(16)))))\n"
    )
    for _ in range(3):  # the race showed in 3 of 4 fresh processes before the fix
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip() == "[0.0]", out.stderr[-500:]
