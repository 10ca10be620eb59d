"""moto's real S3 server on a free loopback port, with one bucket, for the worker's URL delivery."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .servers import free_port


@contextmanager
def moto_s3(bucket: str = "models") -> Iterator[dict[str, str]]:
    """Start moto's S3 server on 127.0.0.1 and create ``bucket``; yield the
    worker's bucket variables (``BUCKET_ENDPOINT_URL`` and the rest) for it;
    stop the server after."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        ).create_bucket(Bucket=bucket)
        yield {
            "BUCKET_ENDPOINT_URL": endpoint,
            "BUCKET_ACCESS_KEY_ID": "test",
            "BUCKET_SECRET_ACCESS_KEY": "test",
            "BUCKET_NAME": bucket,
        }
    finally:
        server.stop()
