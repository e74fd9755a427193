"""Configuration: YAML files and ``--set`` overrides -> validated, frozen config objects.
``vmc`` holds the VMC table (``SPEC``) and its checks; the training table is in
``generative.config``."""

from .vmc import (
    SPEC,
    Config,
    ConfigError,
    config_from_yaml_text,
    from_dict,
    load_config,
    reference_table,
)

__all__ = [
    "SPEC",
    "Config",
    "ConfigError",
    "config_from_yaml_text",
    "from_dict",
    "load_config",
    "reference_table",
]
