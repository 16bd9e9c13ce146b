"""A real S3 API on 127.0.0.1 for tests: moto in server mode, spoken to over HTTP by s3fs/botocore.

    with S3Server() as server:
        env = server.environment()   # AWS_* variables: test credentials, AWS_ENDPOINT_URL
        bucket = server.new_bucket()  # a fresh, empty bucket name

Clients find the server the standard way (the `AWS_ENDPOINT_URL` variable that botocore reads), so
code under test and the installed `msfkit` command in a subprocess need no test-only option.
moto keeps every bucket in this process's memory; each test takes a bucket of its own.
"""

from __future__ import annotations

import itertools
import logging
import os

TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
USER_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")  # a test must not inherit them
_NAMES = itertools.count()


class S3Server:
    """moto's S3 server on 127.0.0.1, on a free port, for the life of the `with` block."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on stderr
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def __enter__(self) -> S3Server:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()

    def environment(self) -> dict[str, str]:
        """The variables that point a standard AWS client (this process's or a child's) at the server."""
        return {
            **TEST_CREDENTIALS,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",  # never ask a cloud's metadata service for credentials
            "AWS_CONFIG_FILE": os.devnull,  # nor read the user's profiles (a region, an endpoint)
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def new_bucket(self) -> str:
        """Create an empty bucket with a name no other test uses, and return the name."""
        import s3fs

        name = f"msfkit-test-{next(_NAMES)}"
        fs = s3fs.S3FileSystem(
            key=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            client_kwargs={"endpoint_url": self.endpoint},
            skip_instance_cache=True,
        )
        fs.mkdir(name)
        return name
