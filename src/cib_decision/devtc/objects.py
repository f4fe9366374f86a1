"""The object service (`services/object/src/api.js`) with one backend that behaves like its
`aws` backend (`backends/aws.js`), the local Taskcluster being the bucket:

- `createUpload` records the object (idempotent while the upload is unfinished and the
  projectId, uploadId and expires are the same; otherwise 409 `Object already exists`), adds
  the hashes given (409 when an algorithm already has another value), then chooses an upload
  method from the proposal: `dataInline` (the data is stored at once) before `putUrl` (a URL
  under `/dev/objects/` accepting one PUT with the signed Content-Type and length, for 45
  minutes); an empty proposal chooses none and only "locks in" the upload;
- `finishUpload` checks the projectId and uploadId (409), adds hashes, and fails like the aws
  backend's tagging call when no data was uploaded (500); once finished it is idempotent for
  the same or fewer hashes;
- `object`, `startDownload` (`getUrl` preferred to `simple`; 406 when neither is accepted) and
  `download` (303) serve finished objects only (404 otherwise). The service keeps the hashes
  and hands them out with `getUrl`; it does not check them against the data (clients do).
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from . import dates
from .api import Call, Context, Handler, Reply
from .apierror import ApiError
from .state import StoredObject

DOWNLOAD_METHODS = ("getUrl", "simple")  # in order of preference
PUT_URL_SECONDS = 45 * 60
GET_URL_SECONDS = 60
UNFINISHED_UPLOAD = timedelta(days=1)
_URLSAFE = str.maketrans("-_", "+/")


def object_url(ctx: Context, name: str) -> str:
    """Where the local Taskcluster (the bucket) serves and accepts an object's data."""
    return f"{ctx.root_url}/dev/objects/{quote(name, safe='')}"


def _not_found(name: str) -> ApiError:
    return ApiError("ResourceNotFound", f'Object "{name}" not found', {"name": name})


def finished(ctx: Context, name: str) -> StoredObject | None:
    """The object when it exists and its upload is finished (what `object` would find)."""
    stored = ctx.state.objects.get(name)
    return stored if stored is not None and stored.upload_id is None else None


def _add_hashes(stored: StoredObject, hashes: dict[str, str] | None) -> None:
    """`add_object_hashes`: new algorithms are added; a known one must have the same value."""
    if any(stored.hashes.get(a, h) != h for a, h in (hashes or {}).items()):
        raise ApiError("RequestConflict", "Content hash already exists with a different value",
                       {"name": stored.name})
    stored.hashes.update(hashes or {})


def _lenient_base64(text: str) -> bytes:
    """Node's `Buffer.from(text, 'base64')`: base64 or base64url, other characters skipped,
    stopping at padding."""
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text.translate(_URLSAFE).split("=")[0])
    if len(cleaned) % 4 == 1:  # a lone last character carries no whole byte
        cleaned = cleaned[:-1]
    return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))


def _upload_method(ctx: Context, stored: StoredObject,
                   proposed: dict[str, Any]) -> dict[str, Any]:
    """The aws backend's `createUpload`: dataInline, else putUrl, else nothing."""
    if "dataInline" in proposed:
        stored.content = _lenient_base64(proposed["dataInline"]["objectData"])
        stored.content_type = proposed["dataInline"]["contentType"]
        return {"dataInline": True}
    if "putUrl" in proposed:
        content_type = proposed["putUrl"]["contentType"]
        length = proposed["putUrl"]["contentLength"]
        expires = ctx.clock() + timedelta(seconds=PUT_URL_SECONDS)
        stored.put_signed = (content_type, length, expires + timedelta(seconds=10))
        headers = {"Content-Type": content_type, "Content-Length": str(length),
                   "Content-Encoding": "identity"}
        if content_type.split(";")[0].strip().lower() == "text/html":
            headers["Content-Disposition"] = "attachment"
        return {"putUrl": {"url": object_url(ctx, stored.name),
                           "expires": dates.to_json(expires), "headers": headers}}
    return {}


def create_upload(ctx: Context, name: str, project_id: str, upload_id: str, expires: datetime,
                  proposed: dict[str, Any], hashes: dict[str, str] | None = None
                  ) -> dict[str, Any]:
    """What `createUpload` does once authorized (the queue calls it for object artifacts):
    record or re-check the upload, add hashes, choose the upload method (returned)."""
    stored = ctx.state.objects.get(name)
    if stored is None:
        stored = StoredObject(name, project_id, upload_id, ctx.clock() + UNFINISHED_UPLOAD,
                              expires)
        ctx.state.objects[name] = stored
    elif (stored.project_id, stored.upload_id, stored.expires) != (project_id, upload_id,
                                                                   expires):
        raise ApiError("RequestConflict", "Object already exists",
                       {"name": name, "projectId": project_id, "backendId": "dev"})
    _add_hashes(stored, hashes)
    return _upload_method(ctx, stored, proposed)


def create_upload_call(call: Call) -> dict[str, Any]:
    """`object.createUpload`."""
    name, body = call.params["name"], call.body
    call.authorize(projectId=body["projectId"], name=name)
    method = create_upload(call.ctx, name, body["projectId"], body["uploadId"],
                           dates.parse(body["expires"]), body["proposedUploadMethods"],
                           body.get("hashes"))
    return {"projectId": body["projectId"], "uploadId": body["uploadId"],
            "expires": body["expires"], "uploadMethod": method}


def _check_finished_hashes(stored: StoredObject, hashes: dict[str, str]) -> None:
    """A repeated finishUpload may name fewer hashes, never new or different ones."""
    for algo, value in hashes.items():
        if algo not in stored.hashes:
            raise ApiError("RequestConflict", f'Object "{stored.name}" is already finished, '
                           f"but without hash algorithm {algo}", {"name": stored.name})
        if stored.hashes[algo] != value:
            raise ApiError("RequestConflict", f'Object "{stored.name}" is already finished, '
                           f"but with a different hash for algorithm {algo}",
                           {"name": stored.name})


def finish_upload(call: Call) -> dict[str, Any]:
    """`object.finishUpload`."""
    name, body = call.params["name"], call.body
    project_id, upload_id = body["projectId"], body["uploadId"]
    call.authorize(projectId=project_id, name=name)
    stored = call.ctx.state.objects.get(name)
    if stored is None:
        raise _not_found(name)
    if stored.project_id != project_id:
        raise ApiError("InputError", f'Object "{name}" does not have projectId {project_id}',
                       {"name": name, "projectId": project_id})
    if stored.upload_id is None:
        _check_finished_hashes(stored, body.get("hashes") or {})
        return {}
    if stored.upload_id != upload_id:
        raise ApiError("RequestConflict", f'Object "{name}" does not have uploadId {upload_id}',
                       {"name": name, "uploadId": upload_id})
    _add_hashes(stored, body.get("hashes"))
    if stored.content is None:  # the aws backend's PutObjectTagging finds no such key
        raise ApiError("InternalServerError", "Internal Server Error: NoSuchKey: The specified "
                       "key does not exist (no data was uploaded for this object)")
    stored.upload_id = stored.upload_expires = None
    stored.put_signed = None
    return {}


def download_method(ctx: Context, stored: StoredObject, method: str) -> dict[str, Any]:
    """The aws backend's `startDownload` reply for `simple` or `getUrl`."""
    url = object_url(ctx, stored.name)
    if method == "simple":
        return {"method": "simple", "url": url}
    expires = ctx.clock() + timedelta(seconds=GET_URL_SECONDS)
    return {"method": "getUrl", "url": url, "expires": dates.to_json(expires),
            "hashes": dict(sorted(stored.hashes.items()))}


def start_download(call: Call) -> dict[str, Any]:
    """`object.startDownload`: the preferred method among those the caller accepts."""
    name = call.params["name"]
    stored = finished(call.ctx, name)
    if stored is None:
        raise _not_found(name)
    accepted = call.body["acceptDownloadMethods"]
    matching = [m for m in DOWNLOAD_METHODS if m in accepted]
    if not matching:
        raise ApiError("NoMatchingMethod", "Object supports methods simple, getUrl",
                       {"methods": "simple, getUrl"})
    return download_method(call.ctx, stored, matching[0])


def get_object(call: Call) -> dict[str, Any]:
    """`object.object`: projectId, expires and hashes of a finished object."""
    name = call.params["name"]
    stored = finished(call.ctx, name)
    if stored is None:
        raise _not_found(name)
    return {"projectId": stored.project_id, "expires": dates.to_json(stored.expires),
            "hashes": dict(sorted(stored.hashes.items()))}


def download(call: Call) -> Reply:
    """`object.download`: a 303 to the data (the simple method)."""
    name = call.params["name"]
    stored = finished(call.ctx, name)
    if stored is None:
        raise _not_found(name)
    url = object_url(call.ctx, name)
    return Reply(f"See Other. Redirecting to {url}", 303, {"location": url},
                 content_type="text/plain; charset=utf-8")


def get_data(ctx: Context, name: str) -> Reply:
    """GET of an object's URL: its data as uploaded (404 `NoSuchKey` before that)."""
    stored = ctx.state.objects.get(name)
    if stored is None or stored.content is None:
        return Reply({"error": f"NoSuchKey: no data for object {name!r}"}, 404)
    return data_reply(stored.content, stored.content_type, stored.content_encoding)


def data_reply(content: bytes, content_type: str, content_encoding: str | None) -> Reply:
    """Data as the bucket serves it: with the Content-Type and Content-Encoding it was put
    with."""
    headers = {"content-encoding": content_encoding} if content_encoding else {}
    return Reply(content, headers=headers, content_type=content_type)


def put_data(ctx: Context, name: str, content_type: str | None, data: bytes,
             content_encoding: str | None = None) -> Reply:
    """PUT to a `putUrl`: accepted while the URL is valid, with the Content-Type and length it
    was signed for (403 otherwise, as S3 refuses a request that does not match its
    signature)."""
    stored = ctx.state.objects.get(name)
    signed = stored.put_signed if stored is not None else None
    if stored is None or signed is None or signed[2] < ctx.clock():
        return Reply({"error": f"AccessDenied: no valid upload URL for object {name!r}"}, 403)
    if (content_type, len(data)) != signed[:2]:
        return Reply({"error": "SignatureDoesNotMatch: the upload URL was signed for "
                               f"Content-Type {signed[0]!r} and {signed[1]} bytes, not "
                               f"{content_type!r} and {len(data)} bytes"}, 403)
    stored.content, stored.content_type = data, content_type
    stored.content_encoding = content_encoding
    return Reply(b"", content_type="text/plain")


HANDLERS: dict[str, Handler] = {
    "object.createUpload": create_upload_call,
    "object.finishUpload": finish_upload,
    "object.startDownload": start_download,
    "object.object": get_object,
    "object.download": download,
}
