"""piaa.config: one policy for every saved config - unknown or missing keys are refused, naming key and file."""

import json

import pytest

from piaa.config import config_from_dict, load_config
from piaa.schema import SchemaError
from pmllm.config import PMLLMConfig
from taskvec.backbones import BackboneConfig
from taskvec.model import UserConfig
from taskvec.task_vector import TaskVectorConfig


@pytest.mark.parametrize("cls", [PMLLMConfig, BackboneConfig, UserConfig, TaskVectorConfig])
def test_every_config_refuses_unknown_keys(cls, tmp_path):
    ok = {}
    if cls is UserConfig:
        ok = {"user": "u", "recipe": "fast", "tasks": [], "groups": [], "base_fingerprint": "x"}
    if cls is TaskVectorConfig:
        ok = {"database": "d", "backbone": {}, "base_fingerprint": "x", "scale": {"min": 1, "max": 5}}
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**ok, "colour_of_sky": "blue"}))
    with pytest.raises(SchemaError, match=r"c\.json: unknown key\(s\) \['colour_of_sky'\]"):
        load_config(cls, path)
    path.write_text(json.dumps(ok))
    assert isinstance(load_config(cls, path), cls)


def test_missing_required_key_and_bad_json(tmp_path):
    with pytest.raises(SchemaError, match=r"user.json: missing key\(s\) \['recipe'"):
        config_from_dict(UserConfig, {"user": "u"}, "user.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(SchemaError, match="bad.json: malformed, not valid JSON .*line 1"):
        load_config(PMLLMConfig, tmp_path / "bad.json")
    with pytest.raises(SchemaError, match="expected a JSON object"):
        config_from_dict(PMLLMConfig, [1, 2], "list.json")


def test_checkpoint_with_unknown_key_is_refused_by_from_pretrained(tmp_path):
    from pmllm.config import CONFIG_NAME, WEIGHTS_NAME
    from pmllm.model import PMLLM

    (tmp_path / CONFIG_NAME).write_text(json.dumps({"llm": "x", "fusion_layerz": [1]}))
    (tmp_path / WEIGHTS_NAME).write_bytes(b"")
    with pytest.raises(SchemaError, match="fusion_layerz"):
        PMLLM.from_pretrained(tmp_path)
