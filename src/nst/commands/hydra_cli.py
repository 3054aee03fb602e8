"""What the two Hydra commands share: where `conf/` is, and one sentence for every mistake Hydra
catches before nst runs (a mistyped key, an unknown group option, an unreadable override).

Hydra itself would print several lines and exit with 1; here the mistake becomes one sentence on
stderr and exit code 2, with the nearest valid name when there is one ("did you mean size?").
SIGTERM becomes the same clean stop as Ctrl-C, with exit code 143, and a write past the
file-size limit (SIGXFSZ) an error to report instead of a kill.
"""

import difflib
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from nst.errors import on_sigterm, write_refusal


def config_dir() -> Path:
    """The `conf/` folder: inside the installed package, or at the repository root."""
    packaged = Path(__file__).parents[1] / "conf"
    return packaged if packaged.is_dir() else Path(__file__).parents[3] / "conf"


def dotted_keys(config, prefix: str = "") -> list[str]:
    """Every key of `config` as a dotted path (`method.iterations`), without resolving values."""
    from omegaconf import OmegaConf

    keys = []
    for key in config:
        name = f"{prefix}{key}"
        keys.append(name)
        leaf = OmegaConf.is_missing(config, key) or OmegaConf.is_interpolation(config, key)
        if not leaf and OmegaConf.is_dict(config[key]):
            keys += dotted_keys(config[key], f"{name}.")
    return keys


def valid_names(config_name: str, overrides: list[str]) -> list[str]:
    """The keys and config groups a command line may set, for the config the group choices among
    `overrides` compose (the other overrides, one of which failed, are left out)."""
    from hydra import compose, initialize_config_dir

    choices = [item for item in overrides if "=" in item and "." not in item.split("=")[0]]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        for attempt in (choices, []):
            try:
                config = compose(config_name=config_name, overrides=attempt)
                break
            except Exception:
                continue
        else:
            return []
    groups = [path.name for path in config_dir().iterdir() if path.is_dir()]
    return dotted_keys(config) + groups


def nearest(name: str, candidates: list[str]) -> str | None:
    """The candidate nearest to `name`: by the whole dotted name, else by its last part (a
    mistyped leaf, or a top-level key that lives in a group: `size` → `data.size`)."""
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if match:
        return match[0]
    leaf = name.rsplit(".", 1)[-1]
    by_leaf = {key.rsplit(".", 1)[-1]: key for key in reversed(candidates)}  # shallowest wins
    match = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.75)
    return by_leaf[match[0]] if match else None


def did_you_mean(name: str, candidates: list[str]) -> str:
    """ "; did you mean X?" for the candidate nearest to `name`, or "" (`nearest`)."""
    match = nearest(name, candidates)
    return f"; did you mean {match}?" if match else ""


def hydra_error_sentence(error: Exception, config_name: str, overrides: list[str]) -> str | None:
    """One sentence for a Hydra composition or override-parsing error, or None for others."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    command = f"{config_name}.py"
    if isinstance(error, MissingConfigException) and error.options:
        group = Path(error.missing_cfg_file or "").parent.name or "option"
        wrong = Path(error.missing_cfg_file or "").name
        match = nearest(wrong, error.options)
        hint = f" (did you mean {match}?)" if match else ""
        return f"Unknown {group} '{wrong}'{hint}; use one of {', '.join(error.options)}."
    if isinstance(error, OverrideParseException):
        return (
            f"Cannot read the argument '{error.override}': write key=value, e.g. size=512 "
            "(quote values with spaces or brackets)."
        )
    cause = error.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
        key = cause.full_key
        hint = did_you_mean(key, valid_names(config_name, overrides))
        return f"{command} has no option '{key}'{hint} (python {command} --help lists them)."
    if type(error).__module__.startswith("hydra."):
        return str(error).strip().splitlines()[0]
    return None


def run_command(main: Callable[[], None], config_name: str) -> None:
    """Run a `hydra.main` entry point; Hydra's own errors become one sentence and exit code 2."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    signal.signal(signal.SIGTERM, on_sigterm)
    if hasattr(signal, "SIGXFSZ"):  # over the file-size limit: EFBIG (one sentence), not a kill
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its own report
    overrides = [item for item in sys.argv[1:] if not item.startswith("-")]
    try:
        main()
    except (HydraException, OmegaConfBaseException) as error:
        sentence = hydra_error_sentence(error, config_name, overrides)
        if sentence is None:
            raise
        print(f"error: {sentence}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:  # Hydra's own files: the run folder, made before the command runs
        frames = traceback.extract_tb(error.__traceback__)[1:]
        if error.filename is None or any("/nst/" in frame.filename for frame in frames):
            raise
        print(
            f"error: Cannot write the run's files at {error.filename} ({write_refusal(error)}); "
            "pick another hydra.run.dir.",
            file=sys.stderr,
        )
        sys.exit(2)
