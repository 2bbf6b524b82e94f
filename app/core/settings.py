"""Service settings, read by entry points and passed around: from the environment (``SYNFLOW_*``),
which overrides a TOML file named by ``SYNFLOW_SETTINGS_FILE`` (the same keys, lower case)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SETTINGS_FILE_VARIABLE = "SYNFLOW_SETTINGS_FILE"


class Settings(BaseSettings):
    """Everything the service needs to know about where it runs.

    ``database_url`` defaults to a SQLite file under ``data_dir``; set ``SYNFLOW_DATABASE_URL`` to a
    ``postgresql+psycopg://`` URL to share one database between an API node and many workers.
    """

    model_config = SettingsConfigDict(env_prefix="SYNFLOW_", extra="ignore")

    data_dir: Path = Field(Path("./synflow-data"), description="checkpoints, uploads, SQLite file")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///DATA_DIR/synflow.db"
    )
    worker_lease_seconds: float = Field(60.0, gt=0, description="a run's lease; renewed by heartbeats")
    worker_poll_seconds: float = Field(1.0, gt=0, description="idle worker's wait between claims")
    worker_health_file: Path | None = Field(
        None,
        description="a worker touches this file whenever it reaches the database (each idle poll, each "
        "lease renewal): a container healthcheck reads its age",
    )
    database_retry_seconds: float = Field(
        300.0, ge=0, description="how long a worker retries a write through a database outage"
    )
    auth_required: bool = Field(False, description="require a bearer token even if none is stored yet")
    api_tokens: list[str] = Field(default_factory=list, description="extra plain tokens (e.g. from a secret)")
    svg_cache_size: int = Field(4096, ge=0)
    max_upload_bytes: int = Field(
        200 * 1024 * 1024, ge=1, description="largest multipart upload (library or template file)"
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1, description="largest non-upload request body (JSON RunConfig, forms)"
    )
    secret_key: str | None = Field(
        None,
        description="signs short-lived event-stream tokens; default: a random key in DATA_DIR/secret_key",
    )
    event_token_seconds: float = Field(
        60.0, gt=0, description="how long a token for one run's event stream can open it"
    )
    # The trust model: API callers never run code of their choosing on the workers. A ``python``
    # reward's target and a ``command`` reward's executable must be on these lists, set by the
    # operator; the CLI (run by the operator) is not restricted.
    allowed_python_targets: list[str] = Field(
        default_factory=list,
        description="python reward targets API callers may use: 'package.module:function', or "
        "'package.module:*' for every function of a module",
    )
    ray_address: str | None = Field(
        None,
        description="the Ray cluster ('auto', 'ray://head:10001', 'host:6379') that runs with "
        "training.executor = 'ray' use; unset: each such run starts a local Ray on its worker",
    )
    allowed_commands: list[str] = Field(
        default_factory=list,
        description="executables (a command reward's first argument, matched exactly) API callers may run; "
        "their arguments are free, so list only programs that do not run code given in their arguments",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get(SETTINGS_FILE_VARIABLE)
        if path is None:
            return init_settings, env_settings
        if not Path(path).is_file():
            raise ValueError(f"{SETTINGS_FILE_VARIABLE}={path}: no such file")
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=path)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'synflow.db').resolve()}"

    def checkpoint_root(self) -> Path:
        return self.data_dir / "checkpoints"

    def upload_root(self) -> Path:
        return self.data_dir / "libraries"

    def generator_root(self) -> Path:
        """Where an imported generator's reward files are written: ``<root>/<run id>/``."""
        return self.data_dir / "generators"

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.checkpoint_root(), self.upload_root()):
            path.mkdir(parents=True, exist_ok=True)
