"""``adain serve``: a REST API and a web page over one ``Stylizer`` per process.

Inference runs in worker threads, at most ``concurrency`` at a time; at most ``queue`` requests
wait for a turn, and any beyond get 503 with Retry-After, so a burst never grows memory without
bound. Uploads are counted while they stream in and cut off at the size limit (413). The server
keeps no state a load balancer would need to know about: uploaded styles live in a per-process LRU
cache, so scale-out is more replicas behind any HTTP load balancer (clients re-upload a style that
a replica does not know: 404).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__, browser, defaults, images
from .errors import AdainError, ImageError, PixelLimitError
from .stylize import Cancelled, StyleCode, Stylizer, parse_style_weights

MEDIA = {"jpeg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png"), "webp": ("WEBP", "image/webp")}


@dataclass
class ServeConfig:
    vgg: str | None = None
    decoder: str | None = None
    device: str = "auto"
    fast: bool = True
    precision: str = "auto"
    max_upload_mb: float = defaults.SERVE_MAX_UPLOAD_MB
    max_pixels: int = defaults.SERVE_MAX_PIXELS
    concurrency: int = defaults.SERVE_CONCURRENCY  # inferences at once in one process
    queue: int = defaults.SERVE_QUEUE  # requests allowed to wait for a turn
    style_cache: int = defaults.SERVE_STYLE_CACHE  # uploaded styles kept (least recently used dropped)
    styles_dir: str | None = None  # images offered as built-in styles
    style_size: int = defaults.STYLE_SIZE
    web_runtime: str | None = None  # ONNX Runtime Web's dist folder (default: found, see browser.py)
    feedback_preview: float | None = None  # the scale of feedback's first pass (None: full size)
    max_memory_mb: float = defaults.SERVE_MAX_MEMORY_MB  # each inference's budget; over it, tiles
    max_polish: int = defaults.SERVE_MAX_POLISH  # the most polish steps a request may ask for
    extra: dict = field(default_factory=dict)


@dataclass
class Style:
    """An encoded style and the (resized) image it came from, which colour preservation needs."""

    name: str
    code: StyleCode | None  # None for a style uploaded with the request: encoded on the fly
    image: Image.Image
    # its four taps measured as polish matches them (``StyleCode.taps``), where the server offers
    # polish; the relu4_1 ``code`` stays the pipeline's own, so unpolished outputs do not change
    polish_code: StyleCode | None = None


class Busy(Exception):
    """More requests are waiting than the queue allows (503)."""


class UnknownStyle(AdainError):
    """A ``style_id`` this process does not know (404)."""


class NotFound(AdainError):
    """A file of the browser mode that this server does not have (404)."""


class Gate:
    """At most ``concurrency`` holders at once and at most ``queue`` waiting; more raise Busy."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self.free = asyncio.Semaphore(concurrency)
        self.queue = queue
        self.waiting = 0

    async def __aenter__(self) -> None:
        if self.free.locked() and self.waiting >= self.queue:
            raise Busy
        self.waiting += 1
        try:
            await self.free.acquire()
        finally:
            self.waiting -= 1

    async def __aexit__(self, *exc: object) -> None:
        self.free.release()


class UploadLimit:
    """ASGI middleware: 413 as soon as a request body passes ``max_bytes``, before it is all read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(send)
        seen, started, rejected = 0, False, False

        async def counted_receive() -> Message:
            # Past the limit: answer 413 now and tell the app the client left, so it stops reading
            # (an exception here would be turned into a 400 by the body parser).
            nonlocal seen, started, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    rejected = True
                    if not started:
                        started = True
                        await self._too_large(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # the 413 has gone out; whatever the app answers to the disconnect is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted_receive, tracked_send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"detail": f"upload over the limit of {self.max_bytes / 2**20:g} MB"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


# The status of each error a request can end in, most specific first.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (PixelLimitError, 413),  # an image over --max-pixels, as uploaded or once resized
    (ImageError, 415),  # not a readable image
    (UnknownStyle, 404),
    (NotFound, 404),
    (Cancelled, 499),  # the client left (nginx's "client closed request"; nobody reads it)
    (AdainError, 422),  # a field that does not fit
)


def status_for(exc: Exception) -> int:
    return next(status for kind, status in STATUS if isinstance(exc, kind))


class Studio:
    """What the endpoints do, over one ``Stylizer`` (shared by all requests), the gate, the built-in
    styles and the LRU cache of uploaded ones. Errors are raised as ``AdainError`` kinds; the app
    turns each into its status (``STATUS``)."""

    def __init__(self, config: ServeConfig, stylizer: Stylizer) -> None:
        self.config = config
        # this server's own limits, and feedback's first pass
        self.stylizer = stylizer.with_options(
            max_pixels=config.max_pixels,
            max_memory_mb=config.max_memory_mb,
            feedback_preview=config.feedback_preview,
        )
        self.gate = Gate(config.concurrency, config.queue)
        self.uploaded: OrderedDict[str, Style] = OrderedDict()
        self.builtin = _load_builtin_styles(self.stylizer, config)
        self.web_runtime = browser.runtime_dir(config.web_runtime)
        self.browser_reason = browser.unavailable_reason(self.web_runtime)
        self._export_lock = threading.Lock()

    async def decode(self, upload: UploadFile, field_name: str, short_side: int = 0) -> Image.Image:
        """An upload decoded (checked against the pixel limit from its header first) and, with
        ``short_side``, resized at once, so a request holds one full-size image at a time."""
        data = await upload.read()
        name = f"{field_name} ({upload.filename})"
        return await run_in_threadpool(_decode, data, name, self.config.max_pixels, short_side)

    def find_style(self, style_id: str) -> Style:
        if style_id in self.builtin:
            return self.builtin[style_id]
        if style_id in self.uploaded:
            self.uploaded.move_to_end(style_id)
            return self.uploaded[style_id]
        raise UnknownStyle(f"style_id {style_id!r} is not known here (upload it with POST /v1/styles)")

    def health(self) -> dict:
        decoder = self.stylizer.decoder_weights
        return {"status": "ok", "version": __version__, "device": str(self.stylizer.device),
                "decoder": Path(decoder.source).name if decoder else None,
                "busy": self.gate.free.locked(), "waiting": self.gate.waiting}  # fmt: skip

    def list_styles(self) -> dict:
        return {"styles": [{"id": sid, "name": s.name, "thumbnail": f"/v1/styles/{sid}/thumbnail"}
                           for sid, s in self.builtin.items()]}  # fmt: skip

    def style_image(self, style_id: str) -> bytes:
        """The style as the server encodes it (resized to its style size), for the browser mode."""
        return _encode(self.find_style(style_id).image, "png")

    def runtime_file(self, name: str) -> Path:
        if self.web_runtime is None or name not in browser.RUNTIME_FILES:
            raise NotFound(f"{name}: not a file of the browser mode here")
        return self.web_runtime / name

    def model_file(self, name: str) -> Path:
        """An exported model of this server's weights (exported on the first request, then cached)."""
        from .export import MODEL_FILES, cached_export

        if self.browser_reason is not None or name not in MODEL_FILES:
            raise NotFound(
                f"{name}: no such model here" + (f" ({self.browser_reason})" if self.browser_reason else "")
            )
        with self._export_lock:  # one export at a time; the others then find it done
            return cached_export(self.config.vgg, self.config.decoder) / name

    def thumbnail(self, style_id: str) -> bytes:
        img = self.find_style(style_id).image.copy()
        img.thumbnail((256, 256))
        return _encode(img, "jpeg")

    async def upload_style(self, upload: UploadFile) -> dict:
        async with self.gate:  # under the same limits as stylizing: decoding and encoding cost as much
            img = await self.decode(upload, "style")
            digest = hashlib.sha256(img.tobytes()).hexdigest()[:16]
            if digest not in self.uploaded:
                name = Path(upload.filename or "style").stem
                size = self.config.style_size
                self.uploaded[digest] = await run_in_threadpool(
                    _encode_style, self.stylizer, img, name, size, self.config.max_polish > 0
                )
                while len(self.uploaded) > self.config.style_cache:
                    self.uploaded.popitem(last=False)
            return {"id": digest, "name": self.uploaded[digest].name}

    async def stylize(self, content: UploadFile, style: list[UploadFile], style_id: list[str],
                      mask: UploadFile | None, controls: dict, request: Request | None = None,
                      feedback: float = 0.0, polish: int = 0, palette: float = 0.0,
                      decoder_match: float | None = None) -> Image.Image:  # fmt: skip
        """The stylized image; ``controls`` are the form's alpha, style_weights, preserve_color and
        content_size, ``feedback``, ``polish``, ``palette`` and ``decoder_match`` the stylizer
        options (0: one pass, no steps, the decoder's colours, the decoder's own activations;
        ``decoder_match`` None: the server's, the share its decoder records).
        Nothing is decoded before the request holds its place at the gate."""
        if decoder_match is None:
            decoder_match = self.stylizer.options.decoder_match
        if polish > self.config.max_polish:
            raise AdainError(
                f"polish: this server takes at most {self.config.max_polish} steps, got {polish}"
                + (" (it offers none)" if not self.config.max_polish else "")
            )
        controls["style_weights"] = _parse_weights(controls["style_weights"])
        styles = [self.find_style(sid) for sid in style_id]
        if not styles and not style:
            raise AdainError("style: give at least one style file or style_id")
        async with self.gate:
            if request is not None and await request.is_disconnected():
                raise Cancelled("the client left while its request waited")  # no work for nobody
            content_img = await self.decode(content, "content")
            for upload in style:
                img = await self.decode(upload, "style", self.config.style_size)
                styles.append(Style(Path(upload.filename or "style").stem, None, img))
            mask_img = await self.decode(mask, "mask") if mask is not None else None
            if decoder_match:
                for kept in styles:
                    await run_in_threadpool(_with_decoder_statistics, self.stylizer, kept)
            async with _watch_client(request) as gone:
                # polled before each tile
                stylizer = self.stylizer.with_options(
                    cancelled=gone.is_set, feedback=feedback, polish=polish, palette=palette,
                    decoder_match=decoder_match,
                )  # fmt: skip
                return await run_in_threadpool(_run, stylizer, content_img, styles, mask_img,
                                               style_size=self.config.style_size, **controls)  # fmt: skip


@contextlib.asynccontextmanager
async def _watch_client(request: Request | None, every: float = 0.25) -> AsyncIterator[threading.Event]:
    """An event set when the client of ``request`` disconnects, polled while the block runs, so the
    work it started stops at its next tile and frees its slot."""
    gone = threading.Event()

    async def watch() -> None:
        while request is not None and not gone.is_set():
            if await request.is_disconnected():
                gone.set()
                return
            await asyncio.sleep(every)

    watcher = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        watcher.cancel()


def create_app(config: ServeConfig | None = None, stylizer: Stylizer | None = None) -> FastAPI:
    """The app; loads the model once unless a ``stylizer`` is given (tests pass their own)."""
    config = config or ServeConfig()
    if stylizer is None:
        stylizer = Stylizer.from_pretrained(
            config.vgg, config.decoder, config.device, config.fast, config.precision
        )
    studio = Studio(config, stylizer)
    app = FastAPI(title="adain", version=__version__,
                  description="Arbitrary style transfer with adaptive instance normalisation.")  # fmt: skip
    app.add_middleware(UploadLimit, max_bytes=int(config.max_upload_mb * 2**20))
    app.add_middleware(Isolated)

    @app.exception_handler(AdainError)
    async def adain_error(_request: object, exc: AdainError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_for(exc))

    @app.exception_handler(Busy)
    async def busy(_request: object, _exc: Busy) -> JSONResponse:
        detail = "busy: too many requests waiting, try again shortly"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "2"})

    _add_routes(app, studio)
    app.state.stylizer, app.state.gate, app.state.uploaded = studio.stylizer, studio.gate, studio.uploaded
    app.state.builtin = studio.builtin
    return app


def _add_routes(app: FastAPI, studio: Studio) -> None:
    """The endpoints: their HTTP shapes here, their work in ``Studio``."""
    image_types = {"image/jpeg": {}, "image/png": {}, "image/webp": {}}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return browser.page_html()

    @app.get("/web.json", include_in_schema=False)
    def web_config() -> dict:
        """What the page's browser mode needs, or why it is not offered."""
        return browser.web_config(static=False, reason=studio.browser_reason, polish=studio.config.max_polish,
                                  decoder_match=studio.stylizer.options.decoder_match)  # fmt: skip

    @app.get("/ort/{name}", include_in_schema=False)
    def runtime_file(name: str) -> FileResponse:
        return FileResponse(studio.runtime_file(name), media_type=_media_type(name))

    @app.get("/models/{name}", include_in_schema=False)
    async def model_file(name: str) -> FileResponse:
        path = await run_in_threadpool(studio.model_file, name)
        return FileResponse(path, media_type=_media_type(name))

    @app.get("/v1/styles/{style_id}/image", responses={200: {"content": {"image/png": {}}}})
    def style_image(style_id: str) -> Response:
        """A built-in style as the server encodes it (the page's browser mode encodes it itself)."""
        return Response(studio.style_image(style_id), media_type="image/png")

    @app.get("/healthz")
    def health() -> dict:
        return studio.health()

    @app.get("/v1/styles")
    def list_styles() -> dict:
        """The built-in example styles (ids usable as ``style_id``)."""
        return studio.list_styles()

    @app.get("/v1/styles/{style_id}/thumbnail", responses={200: {"content": {"image/jpeg": {}}}})
    def thumbnail(style_id: str) -> Response:
        return Response(studio.thumbnail(style_id), media_type="image/jpeg")

    @app.post("/v1/styles", status_code=201)
    async def upload_style(style: Annotated[UploadFile, File(description="a style image")]) -> dict:
        """Encode a style once; its id can then stand in for the file in /v1/stylize."""
        return await studio.upload_style(style)

    @app.post("/v1/stylize", responses={200: {"content": image_types}})
    async def stylize(
        request: Request,
        content: Annotated[UploadFile, File(description="the photo to paint")],
        style: Annotated[list[UploadFile] | None, File(description="style image(s)")] = None,
        style_id: Annotated[
            list[str] | None, Form(description="ids from /v1/styles, before any files")
        ] = None,
        mask: Annotated[UploadFile | None, File(description="white: first style, black: second")] = None,
        alpha: Annotated[float, Form(ge=0.0, le=1.0)] = 1.0,
        style_weights: Annotated[str | None, Form(description="comma-separated, one per style")] = None,
        preserve_color: Annotated[bool, Form()] = False,
        content_size: Annotated[
            int, Form(ge=0, le=defaults.SERVE_MAX_CONTENT_SIZE, description="short side; 0 keeps it")
        ] = defaults.CONTENT_SIZE,
        format: Annotated[Literal["jpeg", "png", "webp"], Form()] = "jpeg",
        feedback: Annotated[
            float,
            Form(
                ge=0.0,
                le=1.0,
                description="paint twice, the second time from style targets "
                "moved by this share of what the first missed (0: once)",
            ),
        ] = 0.0,
        polish: Annotated[
            int,
            Form(
                ge=0,
                le=defaults.MAX_POLISH,
                description="optimisation steps on the result towards the style's statistics: finer "
                "grain and contrast, each step about a single pass's time (0: none; at most the "
                "server's --max-polish; not with a mask)",
            ),
        ] = 0,
        palette: Annotated[
            float,
            Form(
                ge=0.0,
                le=1.0,
                description="move the result's colours this share of the way to the style image's "
                "RGB mean and covariance (0: none; not with a mask or preserve_color)",
            ),
        ] = 0.0,
        decoder_match: Annotated[
            float | None,
            Form(
                ge=0.0,
                le=1.0,
                description="move the decoder's own activations this share of the way to their "
                "statistics decoding the style itself: stronger style for about 1.2x the time (0: none; "
                "default: the share the decoder records, 0.65 for the shipped one)",
            ),
        ] = None,
    ) -> Response:
        """Paint ``content`` in the style(s); returns the image."""
        controls = {"alpha": alpha, "style_weights": style_weights, "preserve_color": preserve_color,
                    "content_size": content_size}  # fmt: skip
        image = await studio.stylize(
            content, style or [], style_id or [], mask, controls, request, feedback, polish, palette,
            decoder_match,
        )  # fmt: skip
        return Response(_encode(image, format), media_type=MEDIA[format][1])


def _media_type(name: str) -> str:
    kinds = {
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
    }
    return kinds.get(Path(name).suffix, "application/octet-stream")


class Isolated:
    """Cross-origin isolation headers on every response, which the browser mode needs for
    WebAssembly threads (SharedArrayBuffer); the page loads nothing from other origins."""

    HEADERS = [
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-embedder-policy", b"require-corp"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def _parse_weights(text: str | None) -> list[float] | None:
    if text is None or not text.strip():
        return None
    try:
        return parse_style_weights(text)
    except AdainError as exc:
        raise AdainError(f"style_weights: {exc}") from None


def _decode(data: bytes, name: str, max_pixels: int, short_side: int) -> Image.Image:
    img = images.decode_image(data, name, max_pixels)
    return images.resize_short_side(img, short_side) if short_side else img


def _encode_style(stylizer: Stylizer, img: Image.Image, name: str, size: int, polish: bool) -> Style:
    """A kept style: resized, encoded, and with ``polish`` its four taps measured too, so that
    polish requests do not measure it again (the decoder's statistics that ``decoder_match``
    needs are measured on the first request that asks: ``_with_decoder_statistics``)."""
    resized = images.resize_short_side(images.flatten_alpha(img), size)
    code = stylizer.encode_style(resized)
    polish_code = stylizer.with_options(polish=1).encode_style(resized) if polish else None
    return Style(name, replace(code, name=name), resized, polish_code)


def _with_decoder_statistics(stylizer: Stylizer, style: Style) -> None:
    """A kept style's code with the decoder's statistics, measured once (one more encoder and
    decoder pass); two requests racing to it measure the same numbers."""
    covariance_missing = (
        stylizer.options.decoder_match_covariance
        and style.code is not None
        and (
            style.code.decoder_covariance is None
            or any(style.code.decoder_covariance[k] is None for k in stylizer.options.decoder_match_layers)
        )
    )
    if style.code is not None and (style.code.decoder is None or covariance_missing):
        code = stylizer.with_options(decoder_match=1.0).encode_style(style.image)
        style.code = replace(code, name=style.name)


def _run(stylizer: Stylizer, content: Image.Image, styles: list[Style], mask: Image.Image | None,
         preserve_color: bool, **controls: object) -> Image.Image:  # fmt: skip
    inputs: list[StyleCode | Image.Image]
    if preserve_color:  # the style recoloured to the content first: the images, not their codes
        inputs = [s.image for s in styles]
    elif stylizer.options.polish:
        inputs = [s.polish_code if s.polish_code is not None else s.image for s in styles]
    else:
        inputs = [s.code if s.code is not None else s.image for s in styles]
    return stylizer(content, inputs, mask=mask, preserve_color=preserve_color, **controls)  # type: ignore[arg-type]


def _encode(img: Image.Image, fmt: str) -> bytes:
    pil_format = MEDIA[fmt][0]
    if img.mode == "RGBA" and pil_format == "JPEG":
        img = img.convert("RGB")
    buffer = io.BytesIO()
    img.save(buffer, format=pil_format, **({"quality": 92} if pil_format != "PNG" else {}))
    return buffer.getvalue()


def _load_builtin_styles(stylizer: Stylizer, config: ServeConfig) -> dict[str, Style]:
    if not config.styles_dir:
        return {}
    folder = Path(config.styles_dir)
    if not folder.is_dir():
        raise AdainError(f"--styles-dir {folder}: not a directory")
    styles = {}
    for path in images.find_images(folder):
        try:
            img = images.load_image(path, config.max_pixels)
        except ImageError:
            continue  # a bad file in the folder is skipped, not fatal
        styles[path.stem] = _encode_style(stylizer, img, path.stem, config.style_size, config.max_polish > 0)
    return styles


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory`` worker processes: the config travels in ``$ADAIN_SERVE_CONFIG``."""
    return create_app(ServeConfig(**json.loads(os.environ.get("ADAIN_SERVE_CONFIG", "{}"))))
