"""Service settings, read from the environment (``SYNFLOW_*``) by entry points and passed around."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'synflow.db').resolve()}"

    def checkpoint_root(self) -> Path:
        return self.data_dir / "checkpoints"

    def upload_root(self) -> Path:
        return self.data_dir / "libraries"

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.checkpoint_root(), self.upload_root()):
            path.mkdir(parents=True, exist_ok=True)
