"""Every default that the library, the CLI, the server and the trainer share, in one place.

Imports nothing heavy, so ``adain --help`` can show them without loading torch.
"""

from __future__ import annotations

# -- inference --------------------------------------------------------------------------------
MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS); --max-pixels
MAX_MEMORY_MB = 2048.0  # budget of the whole process; larger images are processed in tiles
# the budget where polish is asked for and no budget is given: polish's backward pass never tiles,
# and at 6.5 KB a pixel reckoned this takes a 16:9 photo at 512 px (2048 MB: about a 520 px square)
POLISH_MAX_MEMORY_MB = 4096.0
CONTENT_SIZE = 512  # short side the CLI and the server resize contents to (the API keeps the size)
STYLE_SIZE = 512
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MAX_POLISH = 500  # the most --polish steps one image may take
# polish's weight of the style loss against the content loss's 1: half the training's 10, where three
# steps lower both losses at 512² (docs/training-recipes.md, session 38)
POLISH_STYLE_WEIGHT = 5.0
MAX_POLISH_STYLE_WEIGHT = 1000.0
# adain train --jitter-styles: how each cached style crop is varied at random, by name (what the
# trainer reports); half-turn keeps each stroke's orientation
STYLE_JITTERS = {
    "turn": "turned, mirrored",
    "turn+hue": "turned, mirrored and recoloured",
    "hue": "recoloured",
    "half-turn": "turned by 180 degrees",
}
DEVICES = ("auto", "cpu", "cuda")
OUTPUT_EXTENSIONS = ("jpg", "png", "webp")

# -- server -----------------------------------------------------------------------------------
SERVE_MAX_PIXELS = 25_000_000
SERVE_MAX_UPLOAD_MB = 20.0
SERVE_MAX_CONTENT_SIZE = 4096
SERVE_CONCURRENCY = 1
SERVE_QUEUE = 8
SERVE_STYLE_CACHE = 64
# a server's memory budget per inference, polish's (the page offers it at 512 px); beyond it, tiles
SERVE_MAX_MEMORY_MB = POLISH_MAX_MEMORY_MB
SERVE_MAX_POLISH = 10  # the most polish steps one request may ask for (0: the server offers none)

# -- video ------------------------------------------------------------------------------------
VIDEO_CODEC = "libx264"
VIDEO_CRF = 18
VIDEO_BATCH = 4
TEMPORAL_STRENGTH = 0.8

# -- training (scaled down for a CPU; the paper: load 512, crop 256, batch 8, 160k iterations) ----
LOAD_SIZE = 256
CROP_SIZE = 128
BATCH_SIZE = 4
MAX_ITER = 20_000
LR = 1e-4
LR_DECAY = 5e-5
STYLE_WEIGHT = 10.0
CONTENT_WEIGHT = 1.0
SAVE_EVERY = 500
LOG_EVERY = 10
IMAGE_EVERY = 500
WORKERS = 1

# the paper's ablation variants (its Sec. 7.1): content target and normalisation in the decoder
ABLATION_VARIANTS = {
    "adain": {"content_target": "t", "decoder_norm": "none"},
    "content-target-fc": {"content_target": "fc", "decoder_norm": "none"},
    "decoder-batchnorm": {"content_target": "t", "decoder_norm": "batch"},
    "decoder-instancenorm": {"content_target": "t", "decoder_norm": "instance"},
}
EVAL_SIZE = 256
# the decoder's ReLUs that ``decoder_match`` moves: the best pair of 28 measured (training-recipes,
# session 44)
DECODER_MATCH_LAYERS = (0, 6)
