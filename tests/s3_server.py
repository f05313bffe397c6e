"""A local S3 (moto in server mode) for tests: one server per test session, one bucket.

Registered for every test by ``tests/conftest.py`` (``pytest_plugins``). Use the ``s3``
fixture; it gives the endpoint, credentials and a bucket, plus helpers::

    def test_read(s3, tmp_path):
        uri = s3.upload(tmp_path / "a.nc")          # -> "s3://<bucket>/a.nc"
        m = vzsql.scan(uri, storage_options=s3.storage_options)

``s3.storage_options`` are fsspec/s3fs options; ``s3.obstore_options`` are obstore's
``S3Store`` options; ``s3.env`` are the ``AWS_*`` variables that both also understand
(use ``monkeypatch.setenv`` with them to test configuration by environment).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "vzsql-test-key"
SECRET_KEY = "vzsql-test-secret"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    """A running moto S3 server with one bucket made for the session."""

    endpoint_url: str
    bucket: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    _client: Any = field(default=None, repr=False)

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec / s3fs ``storage_options`` (also accepted by ``vzsql.store.ManifestStore``)."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "endpoint_url": self.endpoint_url,
            "client_kwargs": {"region_name": self.region},
        }

    @property
    def obstore_options(self) -> dict[str, Any]:
        """Keyword arguments for ``obstore.store.S3Store`` (and ``ManifestStore``)."""
        return {
            "endpoint": self.endpoint_url,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "region": self.region,
        }

    @property
    def env(self) -> dict[str, str]:
        """``AWS_*`` environment variables pointing at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ALLOW_HTTP": "true",
        }

    @property
    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                region_name=self.region,
            )
        return self._client

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def upload(self, path: str | os.PathLike[str], key: str | None = None) -> str:
        """Upload a local file (key defaults to a unique prefix + its name); return its s3 URL."""
        p = Path(path)
        key = key or f"{uuid.uuid4().hex[:8]}/{p.name}"
        self.client.upload_file(str(p), self.bucket, key)
        return self.url(key)

    def put_bytes(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return self.url(key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 at a free port, with a bucket, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        info = S3Server(endpoint_url=f"http://127.0.0.1:{port}", bucket="vzsql-test")
        info.client.create_bucket(Bucket=info.bucket)
        yield info
    finally:
        server.stop()
