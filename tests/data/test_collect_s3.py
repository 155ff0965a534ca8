"""collect reads raw sources from an S3 prefix (a real moto server on 127.0.0.1, boto3 unpatched)."""

import json
import socket

import boto3
import pytest
from helpers import collect_cfg, collect_process_fn, comparable

from lamops.data.source_files import iter_entries, list_source_files


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def fake_credentials(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


def test_collect_reads_an_s3_prefix(s3_endpoint, fake_credentials):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="raw")
    objects = {
        "team/raw/howto/a.jsonl": b'{"id": "1", "title": "How to Bold Text in Word", "steps": ["Select it.", '
        b'"Click **Bold**."]}\n{"broken\n',
        "team/raw/queries/q.txt": b"word how to bold\n",
        "team/raw/docs/p.md": b"## Make text italic\n1. Select the text.\n2. Click **Italic**.\n",
        "team/raw/notes/readme.md": b"ignored",
        "team/other/howto/b.jsonl": b'{"id": "2", "title": "outside the prefix", "steps": ["x"]}\n',
    }
    for key, body in objects.items():
        s3.put_object(Bucket="raw", Key=key, Body=body)

    root = "s3://raw/team/raw"
    files = list_source_files(root, s3_endpoint)
    assert files == [
        ("doc", "s3://raw/team/raw/docs/p.md"),
        ("howto", "s3://raw/team/raw/howto/a.jsonl"),
        ("query", "s3://raw/team/raw/queries/q.txt"),
    ]
    entries, rejects = [], []
    for _name, good, bad in iter_entries(files, s3_endpoint, root):
        entries += good
        rejects += bad
    assert [e.origin for e in entries] == ["docs/p.md#1", "howto/a.jsonl:1", "queries/q.txt:1"]
    assert [(r.origin, r.reason) for r in rejects] == [("howto/a.jsonl:2", "malformed")]


def test_an_unreachable_endpoint_fails_fast_with_the_endpoint_named(fake_credentials):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    with pytest.raises(Exception, match=f"127.0.0.1:{port}"):
        list_source_files("s3://raw/x", f"http://127.0.0.1:{port}")


def test_collect_reads_an_s3_prefix_in_the_ray_workers_as_in_the_driver(
    s3_endpoint, fake_credentials, ray_local
):
    """The cluster path: Ray Data's reader opens the objects in the workers (pyarrow's S3 filesystem at the
    configured endpoint), with the same entries, rejects (file and line) and counts as the driver's read."""
    from lamops.stages.collect import read_in_driver, read_in_workers

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="shards")
    objects = {
        "raw/howto/a.jsonl": b'{"id": "1", "title": "How to Bold Text in Word", "steps": ["Select it.", '
        b'"Click **Bold**."]}\n{"broken\n',
        "raw/howto/b.jsonl": b'{"id": "2", "title": "How to Underline Text", "steps": ["Select it.", '
        b'"Click **Underline**."]}\n',
        "raw/queries/q.txt": b"word how to bold\ninsert table 3x4 word\n",
        "raw/docs/p.md": b"## Make text italic\n1. Select the text.\n2. Click **Italic**.\n",
    }
    for key, body in objects.items():
        s3.put_object(Bucket="shards", Key=key, Body=body)
    root = "s3://shards/raw"
    files = list_source_files(root, s3_endpoint)
    cfg = collect_cfg(s3_endpoint)
    in_workers = comparable(read_in_workers(cfg, root, files, collect_process_fn()))
    assert in_workers == comparable(read_in_driver(cfg, root, files, collect_process_fn()))
    _, rejected, unread, _, raw_entries = in_workers
    assert [json.loads(r)["origin"] for r in rejected] == ["howto/a.jsonl:2"]
    assert unread == {"docs/p.md": 0, "howto/a.jsonl": 1, "howto/b.jsonl": 0, "queries/q.txt": 0}
    assert raw_entries == 6
