"""The emulator's ECR and the local Docker registry as one store (test infrastructure only).

In AWS, ECR is both the Docker registry that `docker push` writes to and the API that lists,
describes and deletes those images. Locally these are two programs: moto 5.2.1 keeps image
metadata (PutImage, DescribeImages, BatchGetImage, BatchDeleteImage) and knows nothing of
pushes, and a real registry (distribution 2.8, started by scripts/services on 127.0.0.1:443
under the repository host name the emulator returns) stores what `docker push` sends. So
every presence check of `wsctl` failed for pushed images.

Here the registry is the store of record for pushed images, read through on each ECR call that
looks at images:
- before ListImages, DescribeImages, BatchGetImage, PutImage and BatchDeleteImage, the
  repository's tags are read from the registry (tags/list, then each tag's manifest digest)
  and the ECR repository made to hold exactly those images, with the registry's manifest and
  digest (the digest `docker push` printed). Images put only through the API stay as moto
  keeps them.
- BatchDeleteImage and DeleteRepository(force) delete from the registry too, as ECR does: an
  image that loses its last tag is deleted by digest (pulls then fail); one that keeps other
  tags is deleted and its manifest put again under those tags (distribution 2.8 cannot delete
  a tag alone; the layers stay, so the put needs no upload).
- BatchGetImage answers each image id with the tag that was asked for (moto names only the
  image's last tag, so an image with two tags was "missing" under the other one).

Reading through instead of the registry's push notifications: the registry on :443 is shared
by every emulator on the machine (scripts/test, the demo, several worktrees), and a notification
reaches one fixed endpoint some time after the push returns; a read at the time of the ECR call
is always current and finds the emulator that asks.

With no registry answering (moto started alone), ECR behaves as plain moto.
Settings (environment): MOTO_ECR_REGISTRY, the registry's address (default 127.0.0.1:443);
MOTO_ECR_REGISTRY_CA, its CA certificate (default /etc/docker/certs.d/<host>/ca.crt).
"""

import base64
import http.client
import json
import os
import ssl
import threading

from moto.ecr.models import ECRBackend, Image

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])

_lock = threading.RLock()
_manifests = {}  # (repository, digest) -> (manifest text, media type)


class Registry:
    """The Docker registry v2 API of one account's ECR host name, on loopback."""

    def __init__(self, account_id, region_name):
        self.host = f"{account_id}.dkr.ecr.{region_name}.amazonaws.com"
        address = os.environ.get("MOTO_ECR_REGISTRY", "127.0.0.1:443")
        self.address, _, port = address.rpartition(":")
        self.port = int(port)
        self.ca = os.environ.get("MOTO_ECR_REGISTRY_CA", f"/etc/docker/certs.d/{self.host}/ca.crt")
        # What the emulator's fixed GetAuthorizationToken decodes to.
        token = base64.b64encode(f"AWS:{account_id}-auth-token".encode()).decode()
        self.auth = f"Basic {token}"

    def request(self, method, path, body=None, headers=None):
        """(status, headers, body), or None when no registry answers."""
        if not os.path.exists(self.ca):
            return None
        context = ssl.create_default_context(cafile=self.ca)
        context.check_hostname = False  # the certificate names the host; we dial the address
        connection = http.client.HTTPSConnection(self.address, self.port, timeout=5,
                                                 context=context)
        try:
            connection.request(method, path, body=body, headers={
                "Host": self.host, "Authorization": self.auth, **(headers or {})})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except (OSError, ssl.SSLError):
            return None
        finally:
            connection.close()

    def tags(self, repository):
        """{tag: digest} of a repository ({} when it has none), or None without a registry."""
        answer = self.request("GET", f"/v2/{repository}/tags/list")
        if answer is None:
            return None
        status, _, body = answer
        if status == 404:
            return {}
        if status != 200:
            return None
        found = {}
        for tag in json.loads(body).get("tags") or []:
            answer = self.request("HEAD", f"/v2/{repository}/manifests/{tag}",
                                  headers={"Accept": MANIFEST_TYPES})
            if answer and answer[0] == 200:
                headers = {k.lower(): v for k, v in answer[1].items()}
                found[tag] = headers["docker-content-digest"]
        return found

    def manifest(self, repository, digest):
        """(manifest text, media type) of a digest, fetched once."""
        key = (repository, digest)
        if key not in _manifests:
            answer = self.request("GET", f"/v2/{repository}/manifests/{digest}",
                                  headers={"Accept": MANIFEST_TYPES})
            if not answer or answer[0] != 200:
                return None
            headers = {k.lower(): v for k, v in answer[1].items()}
            _manifests[key] = (answer[2].decode(), headers.get("content-type"))
        return _manifests[key]

    def delete(self, repository, digest):
        self.request("DELETE", f"/v2/{repository}/manifests/{digest}")

    def put(self, repository, tag, manifest, media_type):
        self.request("PUT", f"/v2/{repository}/manifests/{tag}", body=manifest.encode(),
                     headers={"Content-Type": media_type})


def _registry(backend):
    return Registry(backend.account_id, backend.region_name)


def _sync(backend, repository_name):
    """Makes the ECR repository hold what the registry holds under its name."""
    repository = backend.repositories.get(repository_name)
    if repository is None:
        return
    registry = _registry(backend)
    tags = registry.tags(repository_name)
    if tags is None:
        return
    by_digest = {}
    for tag, digest in sorted(tags.items()):
        by_digest.setdefault(digest, []).append(tag)
    kept = []
    for image in repository.images:
        from_registry = getattr(image, "in_registry", False)
        digest = image.get_image_digest()
        if digest in by_digest:
            image.image_tags = by_digest.pop(digest)
            image.image_tag = image.image_tags[-1]
            image.in_registry = True
            kept.append(image)
        elif not from_registry:
            kept.append(image)  # put through the API only: moto's own
    for digest, image_tags in by_digest.items():
        found = registry.manifest(repository_name, digest)
        if found is None:
            continue
        manifest, media_type = found
        image = Image(backend.account_id, image_tags[-1], manifest, repository_name,
                      media_type, digest, repository.registry_id)
        image.image_tags = list(image_tags)
        image.in_registry = True
        kept.append(image)
    repository.images[:] = kept


def _reading(method):
    def wrapped(self, repository_name, *args, **kwargs):
        with _lock:
            _sync(self, repository_name)
            return method(self, repository_name, *args, **kwargs)
    return wrapped


for _name in ("list_images", "describe_images", "put_image"):
    setattr(ECRBackend, _name, _reading(getattr(ECRBackend, _name)))

_batch_get_image = ECRBackend.batch_get_image


class _AsAsked:
    """An image answered under the id that was asked for."""

    def __init__(self, image, tag):
        self._image, self.image_tag = image, tag

    def __getattr__(self, name):
        return getattr(self._image, name)

    @property
    def image_id(self):
        return {"imageTag": self.image_tag, "imageDigest": self._image.get_image_digest()}


def _batch_get_image_as_asked(self, repository_name, registry_id=None, image_ids=None):
    with _lock:
        _sync(self, repository_name)
        response = _batch_get_image(self, repository_name, registry_id, image_ids)
    answered = []
    for image_id in image_ids or []:
        for image in self.repositories[repository_name].images:
            digest = image_id.get("imageDigest")
            tag = image_id.get("imageTag")
            if (digest is None or digest == image.get_image_digest()) and (
                    tag is None or tag in image.image_tags):
                answered.append(_AsAsked(image, tag or image.image_tag))
    response["images"] = answered
    return response


ECRBackend.batch_get_image = _batch_get_image_as_asked

_batch_delete_image = ECRBackend.batch_delete_image


def _batch_delete_image_everywhere(self, repository_name, registry_id=None, image_ids=None):
    with _lock:
        _sync(self, repository_name)
        repository = self.repositories.get(repository_name)
        before = {i.get_image_digest(): (i, list(i.image_tags))
                  for i in (repository.images if repository else [])
                  if getattr(i, "in_registry", False)}
        response = _batch_delete_image(self, repository_name, registry_id, image_ids)
        after = {i.get_image_digest(): list(i.image_tags) for i in repository.images}
        registry = _registry(self)
        for digest, (image, tags) in before.items():
            if after.get(digest) == tags:
                continue
            registry.delete(repository_name, digest)
            for tag in after.get(digest, []):
                registry.put(repository_name, tag, image.image_manifest,
                             image.image_manifest_media_type)
        return response


ECRBackend.batch_delete_image = _batch_delete_image_everywhere

_delete_repository = ECRBackend.delete_repository


def _delete_repository_everywhere(self, repository_name, registry_id=None, force=False):
    with _lock:
        _sync(self, repository_name)
        repository = _delete_repository(self, repository_name, registry_id, force)
        registry = _registry(self)
        for image in repository.images:
            if getattr(image, "in_registry", False):
                registry.delete(repository_name, image.get_image_digest())
        return repository


ECRBackend.delete_repository = _delete_repository_everywhere
