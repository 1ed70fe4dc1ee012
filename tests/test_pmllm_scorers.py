"""eval adapters for pmllm (zero-shot scorers, ablations, prompt-only) and the ImageNet class list they use."""

import numpy as np
import pytest
import torch

from eval.api import Benchmark, FoldNotSupported, UserTask
from eval.scorers import create_scorer
from eval.scorers_pmllm import PMLLMScorer, PromptOnlyScorer
from piaa.schema import RatingsTable
from tests.pmllm_tiny import open_gates, tiny_model


def test_imagenet_classes():
    from piaa.data import imagenet_classes

    names = imagenet_classes()
    assert len(names) == 1000 and names[281] == "tabby" and names[285] == "Egyptian cat" and names[967] == "espresso"
    assert all(n and "_" not in n for n in names)


def _task(table: RatingsTable, user: str) -> UserTask:
    rows = table.user_ratings(user)
    return UserTask(user, table.profile(user), [], np.empty(0), list(rows["image"]), table.scale, table.image_root)


def test_pmllm_scorers_and_leak_guard(tiny_dirs, tiny_table, tmp_path):
    table = RatingsTable.load(tiny_table / "ratings")
    bench = Benchmark("tiny", table, [(["u0", "u1", "u2", "u3"], ["u4", "u5"])])
    model = tiny_model(tiny_dirs)
    open_gates(model)
    model.config.meta = {"trained_on": str(tiny_table / "ratings"), "users_from": str(tiny_table / "folds.json"),
                         "fold": 0}  # fmt: skip
    model.save_pretrained(tmp_path / "ck")
    preds = {}
    for name in ("pmllm", "pmllm-text", "pmllm-empty"):
        scorer = create_scorer(name, checkpoint=tmp_path / "ck")
        scorer.fit(bench, ["u0", "u1", "u2", "u3"])
        preds[name] = scorer.predict(_task(table, "u4"))
        assert preds[name].shape == (12,) and np.isfinite(preds[name]).all()
    assert not np.allclose(preds["pmllm"], preds["pmllm-empty"])  # the ablation really changes the profile
    # a fold whose test users the checkpoint was trained on is refused (the harness then skips that fold)
    with pytest.raises(FoldNotSupported, match="trained on 2 user"):
        PMLLMScorer(checkpoint=tmp_path / "ck").fit(bench, ["u2", "u3", "u4", "u5"])
    # ... also when the recorded paths do not exist (another machine): the ids recorded in the checkpoint count
    model.config.meta = {"trained_on": "/elsewhere/ratings", "users_from": "/elsewhere/folds.json", "fold": 0,
                         "train_users": ["u0", "u1", "u2", "u3"]}  # fmt: skip
    model.save_pretrained(tmp_path / "ck2")
    with pytest.raises(FoldNotSupported, match="trained on 2 user"):
        PMLLMScorer(checkpoint=tmp_path / "ck2").fit(bench, ["u2", "u3", "u4", "u5"])
    PMLLMScorer(checkpoint=tmp_path / "ck2").fit(bench, ["u0", "u1", "u2", "u3"])  # the right fold is fine


def test_prompt_only_baseline(tiny_dirs, tiny_table, embedded_vision):
    from pmllm.baseline import PromptOnly

    model = tiny_model(tiny_dirs)
    base = PromptOnly(model.llm, model.tokenizer, embedded_vision)
    table = RatingsTable.load(tiny_table / "ratings")
    task = _task(table, "u0")
    desc = base.describe([task.path(i) for i in task.query_images])
    assert len(desc) == 12 and all(d.count(",") == 2 for d in desc)
    out = base.score_descriptions(task.profile, desc, scale=table.scale)
    assert out.scores.shape == (12,) and np.allclose(out.probs.sum(1), 1)
    # the descriptions reach the LLM: different words, different scores (photos with equal words: equal scores)
    other = base.score_descriptions(task.profile, ["pizza, plate, burrito"] * 12, scale=table.scale)
    assert np.ptp(other.scores) == 0
    tokens = torch.stack([embedded_vision(embedded_vision.preprocess([img])).tokens[0] for img in _imgs(task)])
    assert base.describe_tokens(tokens) == desc
    scorer = PromptOnlyScorer()
    scorer.base = base
    assert np.allclose(scorer.predict(task), out.scores)


def _imgs(task):
    from piaa.images import load_image

    return [load_image(task.path(i), min_side=224) for i in task.query_images]
