import pytest
import yaml

from keypointer.config import Config, apply_override, from_dict, load_config
from keypointer.errors import ConfigError


def test_defaults_round_trip_through_yaml(tmp_path):
    cfg = Config()
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    again = load_config(path)
    assert again == cfg
    assert again.model.input_size == cfg.model.input_size


def test_overrides_parse_yaml_values():
    cfg = load_config(None, ["train.lr=3e-4", "model.input_size=[96, 64]", "train.ema=true"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.model.input_size == (96, 64)
    assert cfg.train.ema is True


def test_every_bad_field_is_named_with_its_dotted_path():
    with pytest.raises(ConfigError) as err:
        from_dict({"train": {"lr": -1, "bogus": 3}, "model": {"dropout": 2}, "zzz": {}})
    text = str(err.value)
    for path in ("train.lr", "train.bogus", "model.dropout", "zzz"):
        assert path in text
    assert "unknown key" in text


def test_wrong_type_is_rejected():
    with pytest.raises(ConfigError, match="loader.batch_size"):
        load_config(None, ["loader.batch_size=lots"])


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key=value"):
        apply_override({}, "train.lr")


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("train: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError):
        load_config(evil)


def test_shipped_configs_are_complete_and_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.glob("*.yaml"))
    assert files, "configs/ is empty"
    for f in files:
        d = yaml.safe_load(f.read_text())
        assert set(d) == set(Config.model_fields), f"{f.name} must list every section"
        load_config(f)


def test_readme_config_reference_is_current():
    from pathlib import Path

    from keypointer.config import reference_markdown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- config-reference")
    block = readme[readme.index("\n", start) + 1 : readme.index("<!-- /config-reference -->")]
    assert block.strip() == reference_markdown().strip()


def test_reference_table_says_which_defaults_the_recipe_chooses():
    from keypointer.config import recipe_fields, reference_markdown

    rows = [line.split(" | ") for line in reference_markdown().splitlines()[2:]]
    chosen = {row[0].strip("| `") for row in rows if row[1].startswith("chosen from the data")}
    assert chosen == set(recipe_fields())
    assert "train.lr" in chosen and "train.optimizer" not in chosen
