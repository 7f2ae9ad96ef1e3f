"""Settings as each version reads them (fractal-2.17.md §4.1-4.3)."""
import os
import sys

from fractal_server import dotenv

ENV_FILE = ".fractal_server.env"


def load_2_16():
    """2.16: load_dotenv(override=False) then Settings(): the process environment wins."""
    values = dotenv.values(ENV_FILE, os.environ)
    values.update({k: v for k, v in os.environ.items()})
    return values


def validation_error(model, field, message):
    sys.stderr.write(
        "Traceback (most recent call last):\n"
        "  ...\n"
        f"pydantic_core._pydantic_core.ValidationError: 1 validation error for {model}\n"
        f"{field}\n  {message}\n"
    )
    sys.exit(1)


def load_2_17():
    """2.17.0: pydantic-settings with env_file; database settings are built (and fail) first."""
    values = dotenv.values(ENV_FILE, os.environ)
    values.update({k: v for k, v in os.environ.items()})
    if not values.get("POSTGRES_DB"):
        validation_error("DatabaseSettings", "POSTGRES_DB", "Field required [type=missing]")
    if not values.get("JWT_SECRET_KEY"):
        validation_error("Settings", "JWT_SECRET_KEY", "Field required [type=missing]")
    backend = values.get("FRACTAL_RUNNER_BACKEND", "local")
    if backend not in ("local", "slurm_ssh", "slurm_sudo"):
        validation_error("Settings", "FRACTAL_RUNNER_BACKEND",
                         f"Input should be 'local', 'slurm_ssh' or 'slurm_sudo' [type=literal_error, input_value='{backend}']")
    group = values.get("FRACTAL_DEFAULT_GROUP_NAME")
    if group is not None and group != "All":
        validation_error("Settings", "FRACTAL_DEFAULT_GROUP_NAME", f"Input should be 'All' [type=literal_error, input_value='{group}']")
    values["FRACTAL_RUNNER_BACKEND"] = backend
    return values
