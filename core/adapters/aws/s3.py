"""Buckets on S3: `<prefix>-<purpose>-<region>` (staging, production, captures, reports,
trash), made on first use. URIs are `s3://<bucket>/<key>`.

The store's region is the home region: a bucket argument `<purpose>` is that purpose's
bucket there. `<purpose>/<region>` names the purpose's bucket in another region (production
buckets per deployment region: `bucket_in`); `locate` reads such a URI back the same way,
and `list(purpose)` lists the purpose's buckets in every region. Each bucket is reached
with a client of its own region.

A model's data is one object (a file, or a `.tar.gz` archive) or, for large models, an
uncompressed prefix: `put` of a folder stores every file under `<key>/` and returns a URI
ending in `/`; `copy`, `get`, `local_path`, `exists` and `delete` of such a URI act on the
whole prefix, as the embedded store (`core.adapters.local.artifacts`) acts on a folder: a
`put` or `copy` over a prefix leaves exactly the new folder's files under it.
Objects carry their SHA-256 in their metadata, so a `put` of the same bytes is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import Any

from core.adapters.aws.errors import aws_call, error_code
from core.adapters.aws.session import REGION_PATTERN, AwsClients
from core.adapters.local.artifacts import sha256_file, tree_files
from core.ports import InvalidInput, NotFound

SCHEME = "s3://"
_SHA_META = "sha256"  # x-amz-meta-sha256


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an `s3://` URI; InvalidInput for anything else."""
    bucket, sep, key = uri.removeprefix(SCHEME).partition("/")
    if not uri.startswith(SCHEME) or not bucket or not sep or not key:
        raise InvalidInput(f"{uri}: not an S3 URI (expected {SCHEME}<bucket>/<key>)")
    return bucket, key


def bucket_named(prefix: str, purpose: str, region: str) -> str:
    """The S3 bucket of mmm's `purpose` in `region` ('mmm-production-eu-west-1')."""
    return f"{prefix}-{purpose}-{region}"


def ensure_bucket(s3: Any, name: str, region: str) -> None:
    """Make bucket `name` in `region` when it is missing (already there is fine)."""
    with aws_call("CreateBucket", f"s3://{name}"):
        try:
            s3.head_bucket(Bucket=name)
            return
        except Exception as exc:
            if error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        args: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":  # S3's one region without a constraint
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            s3.create_bucket(**args)
        except Exception as exc:
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise


def list_keys(s3: Any, bucket: str, prefix: str, after: str = "") -> list[str]:
    """The keys under `prefix` (after `after`), in S3's order (sorted); none when the bucket
    does not exist."""
    found: list[str] = []
    with aws_call("ListObjectsV2", f"s3://{bucket}/{prefix}"):
        try:
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, StartAfter=after
            )
            for page in pages:
                found += [obj["Key"] for obj in page.get("Contents", [])]
        except Exception as exc:
            if error_code(exc) == "NoSuchBucket":
                return []
            raise
    return found


def in_region(uri: str, purpose: str, home: str, region: str) -> str:
    """The same key in the `purpose` bucket of `region`, for a URI in the `purpose` bucket of
    `home` (`s3://mmm-production-us-east-1/k` -> `s3://mmm-production-eu-west-1/k`); any
    other URI as it is. Reading back: `in_region(uri, purpose, region, home)`."""
    bucket, sep, key = uri.removeprefix(SCHEME).partition("/")
    suffix = f"-{purpose}-{home}"
    if not uri.startswith(SCHEME) or not sep or not bucket.endswith(suffix) or bucket == suffix:
        return uri
    return f"{SCHEME}{bucket.removesuffix(suffix)}-{purpose}-{region}/{key}"


class S3ArtifactStore:
    """The ArtifactStore port on S3, in one region (the buckets' region)."""

    def __init__(self, clients: AwsClients, prefix: str, region: str, cache: Path) -> None:
        """`cache`: where `local_path` downloads objects (a folder of the workspace)."""
        self.clients = clients
        self.prefix = prefix
        self.region = region
        self.cache = cache
        self._made: set[str] = set()
        self._lock = threading.Lock()
        self._pattern = re.compile(rf"^{re.escape(prefix)}-([a-z0-9]+)-({REGION_PATTERN})$")

    @property
    def s3(self) -> Any:
        """The client of the home region."""
        return self.clients.client("s3", self.region)

    def _client(self, name: str) -> Any:
        """The client of the region of bucket `name` (the home region's for a bucket of
        another name)."""
        match = self._pattern.match(name)
        return self.clients.client("s3", match.group(2) if match else self.region)

    # ------------------------------------------------------------ names

    def bucket_in(self, purpose: str, region: str) -> str:
        """The bucket argument of `purpose`'s bucket in `region` ('production/eu-west-1';
        just 'production' in the home region)."""
        return purpose if region == self.region else f"{purpose}/{region}"

    def _purpose_region(self, bucket: str) -> tuple[str, str]:
        purpose, _, region = bucket.partition("/")
        if not re.fullmatch("[a-z0-9]+", purpose) or (
            region and not re.fullmatch(REGION_PATTERN, region)
        ):
            raise InvalidInput(f"{bucket!r}: not a bucket (<purpose> or <purpose>/<region>)")
        return purpose, region or self.region

    def bucket_name(self, bucket: str) -> str:
        """The S3 bucket of a purpose ('production' -> 'mmm-production-us-east-1'), or of a
        purpose in a region ('production/eu-west-1' -> 'mmm-production-eu-west-1')."""
        purpose, region = self._purpose_region(bucket)
        return bucket_named(self.prefix, purpose, region)

    def uri(self, bucket: str, key: str) -> str:
        return f"{SCHEME}{self.bucket_name(bucket)}/{key.lstrip('/')}"

    def locate(self, uri: str) -> tuple[str, str] | None:
        try:
            name, key = split_uri(uri)
        except InvalidInput:
            return None
        match = self._pattern.match(name)
        if not match:
            return None
        return self.bucket_in(match.group(1), match.group(2)), key

    def _buckets_of(self, purpose: str) -> list[str]:
        """The buckets of `purpose` in every region (the home region's first)."""
        home = bucket_named(self.prefix, purpose, self.region)
        with aws_call("ListBuckets", f"buckets {self.prefix}-{purpose}-*"):
            listed = self.s3.list_buckets().get("Buckets", [])
        others = sorted(
            name
            for name in (b["Name"] for b in listed)
            if name != home and (m := self._pattern.match(name)) and m.group(1) == purpose
        )
        return [home, *others]

    def _ensure_bucket(self, name: str) -> None:
        if name in self._made:
            return
        match = self._pattern.match(name)
        with self._lock:
            ensure_bucket(self._client(name), name, match.group(2) if match else self.region)
            self._made.add(name)

    # ------------------------------------------------------------ objects

    def _head(self, name: str, key: str) -> dict[str, Any] | None:
        with aws_call("HeadObject", f"s3://{name}/{key}"):
            try:
                head: dict[str, Any] = self._client(name).head_object(Bucket=name, Key=key)
                return head
            except Exception as exc:
                if error_code(exc) in {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}:
                    return None
                raise

    def _keys(self, name: str, prefix: str) -> list[str]:
        return list_keys(self._client(name), name, prefix)

    def _put_file(self, name: str, key: str, src: Path) -> None:
        digest = sha256_file(src)
        head = self._head(name, key)
        if head is not None and head.get("Metadata", {}).get(_SHA_META) == digest:
            return
        with aws_call("PutObject", f"s3://{name}/{key}"):
            # upload_file goes multipart for large files; the object appears whole or not at all
            self._client(name).upload_file(
                str(src), name, key, ExtraArgs={"Metadata": {_SHA_META: digest}}
            )

    def put(self, bucket: str, key: str, src: Path) -> str:
        name = self.bucket_name(bucket)
        key = key.lstrip("/")
        if src.is_dir():
            return self._put_tree(bucket, name, key, src)
        self._ensure_bucket(name)
        self._put_file(name, key, src)
        return f"{SCHEME}{name}/{key}"

    def _put_tree(self, bucket: str, name: str, key: str, src: Path) -> str:
        base = key.strip("/")
        if not base:
            raise InvalidInput(f"{src}: a folder needs a key to go under in bucket {bucket}")
        # The files the registry's digest covers (sha256_tree): links to files followed, a
        # link to a folder refused, as the embedded store does.
        files = tree_files(src)
        if not files:
            raise InvalidInput(f"{src}: an empty folder (no files to store)")
        self._ensure_bucket(name)
        prefix = base + "/"
        for rel in files:
            self._put_file(name, prefix + rel, src / rel)
        self._prune(name, prefix, {prefix + rel for rel in files})
        return f"{SCHEME}{name}/{prefix}"

    def _prune(self, name: str, prefix: str, wanted: set[str]) -> None:
        """Delete what else is under `prefix`: a folder written over an older one replaces it
        whole (no stale shard is left to be loaded with the new ones)."""
        stale = [k for k in self._keys(name, prefix) if k not in wanted]
        if stale:
            self._delete_keys(name, stale, f"{SCHEME}{name}/{prefix}")

    def copy(self, src_uri: str, bucket: str, key: str) -> str:
        src_bucket, src_key = split_uri(src_uri)
        name = self.bucket_name(bucket)
        self._ensure_bucket(name)
        key = key.lstrip("/")
        if src_key.endswith("/"):  # an uncompressed prefix: every object under it
            sources = self._keys(src_bucket, src_key)
            if not sources:
                raise NotFound(f"{src_uri}: no such artifact (empty prefix)")
            base = key.rstrip("/") + "/"
            copied = {base + source[len(src_key) :] for source in sources}
            for source in sources:
                self._copy_object(src_bucket, source, name, base + source[len(src_key) :])
            self._prune(name, base, copied)
            return f"{SCHEME}{name}/{base}"
        self._copy_object(src_bucket, src_key, name, key)
        return f"{SCHEME}{name}/{key}"

    def _copy_object(self, src_bucket: str, src_key: str, name: str, key: str) -> None:
        source = self._head(src_bucket, src_key)
        if source is None:
            raise NotFound(f"s3://{src_bucket}/{src_key}: no such artifact")
        digest = source.get("Metadata", {}).get(_SHA_META)
        target = self._head(name, key)
        if target is not None and digest and target.get("Metadata", {}).get(_SHA_META) == digest:
            return
        with aws_call("CopyObject", f"s3://{src_bucket}/{src_key} -> s3://{name}/{key}"):
            # the managed copy goes multipart above 5 GB; metadata (the digest) comes along;
            # across regions it asks the target's region, reading the source in its own
            self._client(name).copy(
                {"Bucket": src_bucket, "Key": src_key},
                name,
                key,
                SourceClient=self._client(src_bucket),
            )

    def get(self, uri: str, dest: Path) -> Path:
        """The object, or the folder of a prefix's objects, at `dest` (or in it, by its own
        name, when `dest` is a folder)."""
        name, key = split_uri(uri)
        if key.endswith("/"):
            return self._get_tree(uri, name, key, dest)
        target = dest / key.rsplit("/", 1)[-1] if dest.is_dir() else dest
        if self._head(name, key) is None:
            raise NotFound(f"{uri}: no such artifact")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        with aws_call("GetObject", uri):
            self._client(name).download_file(name, key, str(partial))
        partial.replace(target)
        return target

    def _get_tree(self, uri: str, name: str, key: str, dest: Path) -> Path:
        keys = [k for k in self._keys(name, key) if not k.endswith("/")]  # no folder markers
        if not keys:
            raise NotFound(f"{uri}: no such artifact")
        target = dest / PurePosixPath(key).name if dest.is_dir() else dest
        rels = [k[len(key) :] for k in keys]
        for rel in rels:  # a key is any text: none may lead outside the folder
            if any(part in ("", ".", "..") for part in rel.split("/")):
                raise InvalidInput(f"{uri}: holds {key}{rel}, not a path inside a folder")
        # Downloaded into a folder beside the target, then renamed: a crash never leaves half
        # a model at the target.
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(
            tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
        )
        try:
            for source, rel in zip(keys, rels, strict=True):
                (partial / rel).parent.mkdir(parents=True, exist_ok=True)
                with aws_call("GetObject", f"{SCHEME}{name}/{source}"):
                    self._client(name).download_file(name, source, str(partial / rel))
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)  # an older copy: replaced whole, no file of it stays
            elif target.exists() or target.is_symlink():
                target.unlink()
            try:
                os.replace(partial, target)
            except OSError:
                if not target.is_dir():
                    raise  # else another reader put the same prefix there in between
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return target

    def exists(self, uri: str) -> bool:
        name, key = split_uri(uri)
        if key.endswith("/"):
            return bool(self._keys(name, key))
        return self._head(name, key) is not None

    def delete(self, uri: str) -> bool:
        name, key = split_uri(uri)
        keys = self._keys(name, key) if key.endswith("/") else [key]
        if not key.endswith("/") and self._head(name, key) is None:
            return False
        if not keys:
            return False
        self._delete_keys(name, keys, uri)
        return True

    def _delete_keys(self, name: str, keys: list[str], what: str) -> None:
        with aws_call("DeleteObjects", what):
            for start in range(0, len(keys), 1000):  # S3's batch limit
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                self._client(name).delete_objects(
                    Bucket=name, Delete={"Objects": batch, "Quiet": True}
                )

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        """The objects under `prefix` in bucket `<purpose>/<region>`, or, for a bare
        `<purpose>`, in that purpose's buckets of every region (the home region's first)."""
        purpose = self._purpose_region(bucket)[0]
        names = [self.bucket_name(bucket)] if "/" in bucket else self._buckets_of(purpose)
        return [f"{SCHEME}{name}/{k}" for name in names for k in self._keys(name, prefix)]

    def local_path(self, uri: str) -> Path:
        """A downloaded copy in the cache (a folder for a prefix), fetched again when an
        object changed."""
        name, key = split_uri(uri)
        if ".." in key.split("/"):
            raise InvalidInput(f"{uri}: points outside the cache")
        if key.endswith("/"):
            # a prefix: the ETags of all its objects, in key order (any change, another copy)
            keys = self._keys(name, key)
            heads = [self._head(name, k) for k in keys]
            if not keys or None in heads:
                raise NotFound(f"{uri}: no such artifact")
            etag = "".join(
                f"{k}\0{h.get('ETag', '')}\0" for k, h in zip(keys, heads, strict=True) if h
            )
        else:
            head = self._head(name, key)
            if head is None:
                raise NotFound(f"{uri}: no such artifact")
            etag = str(head.get("ETag", ""))
        tag = hashlib.sha256(etag.encode()).hexdigest()[:16]
        path = self.cache / name / tag / key.rstrip("/")
        if not path.exists():
            self.get(uri, path)
        return path

    def code_uri(self, uri: str) -> str:
        """Generated code names the S3 location itself, never a cache path."""
        return uri
