"""The explorer's FastAPI app: a JSON and PNG API over one or more runs, and the static page.

Every input is validated (schemas.py) and bad input gets a 4xx with a message in ``detail``. Request bodies are
capped at 2 MiB before they are read, and a server on a loopback address answers only requests addressed to it by
that address or ``localhost`` (``Guard``): a web page whose own host name an attacker re-points at 127.0.0.1 (DNS
rebinding) gets 400, not the test images. Model calls run in the thread pool (uploads on two threads of their
own), so a slow client, which only holds the event loop while its bytes trickle in, never blocks the others. The
page and its scripts come from ``static/`` only, and the Content-Security-Policy forbids anything from elsewhere.
The OpenAPI schema is at /openapi.json; the interactive /docs page is off, as it loads its scripts from a CDN."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.requests import ClientDisconnect

from .. import __version__
from ..errors import VaelabError
from .explorer import Explorer
from .schemas import (
    MAX_CATEGORIES,
    MAX_INDEX,
    DecodeRequest,
    Encoded,
    EncodeRequest,
    InterpolateRequest,
    LatentMap,
    RequestError,
    RunInfo,
)
from .uploads import FORMATS, MAX_UPLOAD_BYTES

STATIC = FilePath(__file__).parent / "static"
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
UPLOAD_BODY = {
    "required": True,
    "content": {kind: {"schema": {"type": "string", "format": "binary"}} for kind in FORMATS},
    "description": f"the image file's bytes, at most {MAX_UPLOAD_BYTES} bytes and 4096 pixels per side",
}


# Uploads are decoded on two threads of their own: a 4096^2 RGBA PNG takes ~130 MB while it is decoded, and
# memory freed on one of the thread pool's 40 threads stays with that thread's allocator arena. Twelve such
# uploads at once, server RSS 0.44 GB before: peak 2.9 GB each on a pool thread, 1.2 GB at most two at a time on
# pool threads, 0.73 GB on these two threads (measured 2026-12-01, docs/explorer.md).
UPLOAD_THREADS = 2
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def host_name(header: str) -> str:
    """The host of a Host header without its port: 'localhost:8765' -> 'localhost', '[::1]:80' -> '[::1]'."""
    header = header.strip().lower()
    if header.startswith("[") and "]" in header:
        return header[: header.index("]") + 1]
    return header.split(":", 1)[0].removesuffix(".")  # 'localhost.' is the same name, fully qualified


class Guard:
    """ASGI middleware: refuses requests whose Host header is not one of ``hosts`` (None: any) with 400, request
    bodies above ``limit`` bytes with 413 (by Content-Length before reading, or while counting a chunked body),
    and adds the security headers to every response."""

    def __init__(self, app, limit: int = MAX_UPLOAD_BYTES, hosts: frozenset[str] | None = LOCAL_HOSTS):
        self.app, self.limit, self.hosts = app, limit, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")  # HTTP/1.0 may send none; browsers always do
        if self.hosts is not None and b"host" in headers and host_name(host) not in self.hosts:
            return await self.reply(send, 400, self.wrong_host(host))
        length = headers.get(b"content-length", b"0")
        if not length.isdigit():
            return await self.reply(send, 400, "Content-Length must be a number of bytes")
        if int(length) > self.limit:
            return await self.reply(send, 413, f"{self.too_large} (this one has {int(length)} bytes)")
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, self.too_large)
            return message

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, counted, with_headers)

    def wrong_host(self, host: str) -> str:
        names = ", ".join(sorted(self.hosts or ()))
        return f"this explorer answers requests for {names} only, not for Host {host!r}: open it by one of those"

    @property
    def too_large(self) -> str:
        return f"the request body is too large: the limit is {self.limit} bytes ({self.limit / 2**20:g} MiB)"

    async def reply(self, send, status: int, message: str) -> None:
        body = json.dumps({"detail": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + SECURITY_HEADERS})
        await send({"type": "http.response.body", "body": body})


def chosen_run(
    request: Request, run_id: Annotated[int, Path(ge=0, le=MAX_INDEX, description="the run's index")]
) -> Explorer:
    explorers = request.app.state.explorers
    if run_id >= len(explorers):
        raise RequestError(f"no run {run_id}: this explorer has runs 0..{len(explorers) - 1}", 404)
    return explorers[run_id]


Run = Annotated[Explorer, Depends(chosen_run)]


async def json_body(request: Request) -> None:
    """415 for a body sent as anything but JSON (FastAPI reads a body as JSON only when it is labelled so)."""
    kind = request.headers.get("content-type")
    if kind is None or kind.split(";")[0].strip().lower() != "application/json":
        got = "no Content-Type" if kind is None else repr(kind)
        raise RequestError(f"send the body as JSON with Content-Type: application/json; got {got}", 415)


JSON = Depends(json_body)


def create_app(explorers: list[Explorer], hosts: frozenset[str] | None = LOCAL_HOSTS) -> FastAPI:
    """The app over these runs (ids 0, 1, ... in the given order), answering requests for ``hosts`` (None: any
    host, for a server on a public address; Starlette's TestClient needs ``base_url="http://127.0.0.1"``)."""
    decoders = ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="vaelab-upload")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        decoders.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        lifespan=lifespan,
        title="vaelab explorer",
        version=__version__,
        description="Decode latents, encode images, walk the latent map of trained vaelab runs. "
        "Errors: a 4xx with a message in `detail`.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(Guard, hosts=hosts)
    app.state.explorers = explorers

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 without echoing the input, which may hold NaN (not JSON: FastAPI's own handler fails);
        400 for a body that is not JSON at all."""
        errors = err.errors()
        broken = next((e for e in errors if e["type"] == "json_invalid"), None)
        if broken is not None:
            where = f" at character {broken['loc'][-1]}" if isinstance(broken["loc"][-1], int) else ""
            error = broken.get("ctx", {}).get("error", broken["msg"])
            return JSONResponse({"detail": f"the body is not valid JSON{where}: {error}"}, status_code=400)
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(VaelabError)
    async def user_error(request: Request, err: VaelabError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=getattr(err, "status", 422))

    @app.get("/api/runs", response_model=list[RunInfo], summary="The runs, their latent spec and dimensions")
    def runs() -> list[RunInfo]:
        return [e.info() for e in explorers]

    @app.get("/api/runs/{run_id}/map", response_model=LatentMap, summary="Test latents as 2-D points")
    def latent_map(e: Run) -> LatentMap:
        return e.latent_map()

    def json_to_png(path: str, summary: str):
        """The decorator of a POST endpoint that takes a JSON body and answers a PNG."""
        return app.post(path, response_class=Response, responses=PNG, summary=summary, dependencies=[JSON])

    @json_to_png("/api/runs/{run_id}/decode", "Decode a latent")
    def decode(e: Run, request: DecodeRequest) -> Response:
        return Response(e.decode_png(request), media_type="image/png")

    @app.post("/api/runs/{run_id}/encode", response_model=Encoded, summary="Encode a test image", dependencies=[JSON])
    def encode(e: Run, request: EncodeRequest) -> Encoded:
        return e.encode_test(request.index)

    @app.post(
        "/api/runs/{run_id}/upload", response_model=Encoded, openapi_extra={"requestBody": UPLOAD_BODY},
        summary="Encode your own PNG or JPEG image",
        responses={413: {"description": "body above 2 MiB"}, 415: {"description": "not PNG or JPEG"}},
    )  # fmt: skip
    async def upload(
        e: Run,
        request: Request,
        label: Annotated[int | None, Query(ge=0, lt=MAX_CATEGORIES, description="conditional models")] = None,
    ) -> Encoded:
        try:
            data = await request.body()
        except ClientDisconnect:  # nobody is left to answer; not a server error
            return Response(status_code=400)
        content_type = request.headers.get("content-type", "")
        return await asyncio.wrap_future(decoders.submit(e.encode_upload, data, content_type, label))

    @json_to_png("/api/runs/{run_id}/interpolate", "Interpolate")
    def interpolate(e: Run, request: InterpolateRequest) -> Response:
        return Response(e.interpolate_png(request.i, request.j, request.steps, request.slerp), media_type="image/png")

    @app.get("/api/runs/{run_id}/test-images/{index}", response_class=Response, responses=PNG, summary="A test image")
    def test_image(e: Run, index: Annotated[int, Path(ge=0, le=MAX_INDEX)]) -> Response:
        return Response(e.test_image_png(index), media_type="image/png")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
