#!/usr/bin/python3
"""Writes WebP and PNG files and Pillow's decoding of them, the reference that
data/transforms.Decode and ToRGB are checked against (testdata/transforms/pillow/).

For every NAME.webp or NAME.png, NAME.rgb holds
np.asarray(Image.open(NAME).convert("RGB")) as raw bytes (height x width x 3,
uint8): what torchvision sees. manifest.json lists each file with its size, the
mode Pillow opens it in, how it was written, and
  alpha_sha256  SHA-256 of Pillow's alpha plane (height x width uint8), for
                images that Pillow opens with an alpha channel (RGBA, LA, PA)
  yuv_sha256    for lossy (VP8) WebP: SHA-256 of the Y, U and V planes that
                libwebp's own WebPDecodeYUV returns (Y is width x height, U and
                V are (width+1)/2 x (height+1)/2), read through ctypes from the
                libwebp that Pillow links, so that a difference can be pinned
                on the VP8 decoding or on the upsampling and colour conversion
  frames        the number of frames (an animation's RGB is its first frame's,
                which is what Pillow opens it at)

WebP files are written by Pillow's encoder (libwebp): lossy at several
qualities, with and without alpha (VP8X + ALPH), VP8X without alpha (an EXIF
chunk), lossless, and animations (Pillow's, and hand-wrapped ones whose first
frame is smaller than the canvas and off its origin). PNG files are written by the small encoder below, since
Pillow cannot write 16-bit colour: every colour type at every bit depth PNG
allows, tRNS on gray, colour and palette images, and Adam7 interlacing.

Some WebP files are written by libwebp's cwebp instead (encoder options that
Pillow does not pass: simple or no loop filter, segments, sharpness, alpha
quantization, uncompressed alpha; it must be on PATH for the committed set),
and some by libwebp's WebPEncode through ctypes with several token
partitions, which neither Pillow nor cwebp can ask for.

Usage: /usr/bin/python3 pillow_decode_fixtures.py [--out DIR] [--seed N] [--count K]
Without --count the fixed committed set is written; with --count, K random
images of random kinds, sizes and options (interop tests; cwebp options only
where cwebp is on PATH).
"""
import argparse, ctypes, ctypes.util, hashlib, json, os, shutil, struct, subprocess, warnings, zlib

import numpy as np
from PIL import Image, features


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


def make_rgb(rng, w, h):
    # Smooth gradients, noise and hard-edged rectangles: chroma that changes
    # slowly and abruptly, and values at both ends of the range.
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.01, 0.4), rng.uniform(0.01, 0.4), rng.uniform(0, 6.3)
        img[..., c] = 127.5 + 130 * np.sin(fx * x + fy * y + ph)
    img += rng.normal(0, rng.uniform(0, 40), img.shape)
    for _ in range(3):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        img[y0:y0 + max(1, h // 4), x0:x0 + max(1, w // 4)] = rng.choice([0, 255], 3)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_alpha(rng, w, h, columns=False):
    # Opaque, fully transparent and partial regions, with hard edges. With
    # columns, alpha changes across the rows only, which libwebp's encoder
    # compresses with its vertical filter.
    if columns:
        return np.tile(rng.integers(0, 256, (1, w)), (h, 1)).astype(np.uint8)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    a = 127.5 + 160 * np.sin(rng.uniform(0.05, 0.5) * x + rng.uniform(0.05, 0.5) * y)
    a += rng.normal(0, 10, a.shape)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# WebP

_lib = None


def lib_for_encoding():
    global _lib
    if _lib is None:
        _lib = libwebp()
    return _lib


def libwebp():
    # The libwebp that Pillow's _webp module links against (Debian's).
    for name in ("libwebp.so.7", ctypes.util.find_library("webp")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.WebPDecodeYUV.restype = ctypes.POINTER(ctypes.c_uint8)
        lib.WebPDecodeYUV.argtypes = [ctypes.c_char_p, ctypes.c_size_t] + [ctypes.POINTER(ctypes.c_int)] * 2 + \
            [ctypes.POINTER(ctypes.POINTER(ctypes.c_uint8))] * 2 + [ctypes.POINTER(ctypes.c_int)] * 2
        return lib
    raise SystemExit("libwebp not found")


def riff_chunks(data):
    # The FourCCs of a WebP file's chunks.
    kinds, off = [], 12
    while off + 8 <= len(data):
        kinds.append(data[off:off + 4])
        off += 8 + struct.unpack("<I", data[off + 4:off + 8])[0]
        off += off & 1
    return kinds


def encode_partitions(lib, im, quality, partitions, method=2):
    # libwebp's WebPEncode with config.partitions = log2(token partitions),
    # which neither Pillow nor cwebp sets. WebPConfig and WebPPicture are
    # filled by libwebp's own init calls; only fields in the part of the
    # structs that is the same in every libwebp since 0.5 are set here:
    # WebPConfig.partitions is its 19th int (offset 72), WebPPicture.width
    # and height at 8 and 12, writer and custom_ptr at 96 and 104 (x86-64).
    # Methods 3 and up code the tokens in one partition whatever the config
    # says, so method is 0, 1 or 2 (its 3rd int).
    abi = 0x020f  # WEBP_ENCODER_ABI_VERSION of libwebp 1.2; only the major byte is checked
    config = (ctypes.c_uint8 * 1024)()
    pic = (ctypes.c_uint8 * 1024)()
    writer = (ctypes.c_uint8 * 64)()
    if not lib.WebPConfigInitInternal(config, 0, ctypes.c_float(quality), abi):
        raise SystemExit("WebPConfigInit failed")
    ints = ctypes.cast(config, ctypes.POINTER(ctypes.c_int))
    assert ints[6] == 4 and ints[8] == 60 and ints[14] == 100 and ints[18] == 0, "unexpected WebPConfig layout"
    ints[18] = partitions
    ints[2] = method
    if not lib.WebPPictureInitInternal(pic, abi):
        raise SystemExit("WebPPictureInit failed")
    pints = ctypes.cast(pic, ctypes.POINTER(ctypes.c_int))
    pints[2], pints[3] = im.size
    lib.WebPMemoryWriterInit(writer)
    ptrs = ctypes.cast(ctypes.addressof(pic) + 96, ctypes.POINTER(ctypes.c_void_p))
    ptrs[0] = ctypes.cast(lib.WebPMemoryWrite, ctypes.c_void_p).value
    ptrs[1] = ctypes.addressof(writer)
    pix = np.ascontiguousarray(np.asarray(im))
    imp = lib.WebPPictureImportRGBA if im.mode == "RGBA" else lib.WebPPictureImportRGB
    if not imp(pic, pix.ctypes.data_as(ctypes.c_char_p), pix.shape[1] * pix.shape[2]):
        raise SystemExit("WebPPictureImport failed")
    ok = lib.WebPEncode(config, pic)
    wp = ctypes.cast(writer, ctypes.POINTER(ctypes.c_void_p))
    size = ctypes.cast(ctypes.addressof(writer) + 8, ctypes.POINTER(ctypes.c_size_t))[0]
    out = ctypes.string_at(wp[0], size)
    lib.WebPMemoryWriterClear(writer)
    lib.WebPPictureFree(pic)
    if not ok:
        raise SystemExit("WebPEncode failed")
    return out


def encode_still(im, kw):
    import io
    b = io.BytesIO()
    im.save(b, "WEBP", **kw)
    return b.getvalue()


def riff(chunks):
    body = b""
    for kind, data in chunks:
        body += kind + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def u24(v):
    return struct.pack("<I", v)[:3]


def wrap_animation(still, fx, fy, fw, fh, cw, ch, alpha):
    # VP8X (animation flag, alpha flag), ANIM (background, loop count) and
    # one ANMF: X/2, Y/2, width-1, height-1, duration, flags, then the
    # still's ALPH/VP8/VP8L chunks.
    data, off, frame = still, 12, b""
    while off + 8 <= len(data):
        n = struct.unpack("<I", data[off + 4:off + 8])[0]
        if data[off:off + 4] in (b"ALPH", b"VP8 ", b"VP8L"):
            frame += data[off:off + 8 + n + (n & 1)]
        off += 8 + n + (n & 1)
    flags = 0x02 | (0x10 if alpha else 0)
    vp8x = bytes([flags, 0, 0, 0]) + u24(cw - 1) + u24(ch - 1)
    anmf = u24(fx // 2) + u24(fy // 2) + u24(fw - 1) + u24(fh - 1) + u24(100) + b"\x00" + frame
    return riff([(b"VP8X", vp8x), (b"ANIM", b"\x80\x40\x20\xff\x00\x00"), (b"ANMF", anmf)])


def alph_filter(data):
    # The filtering method in a WebP file's ALPH header byte (bits 2-3).
    off = 12
    while off + 8 <= len(data):
        n = struct.unpack("<I", data[off + 4:off + 8])[0]
        if data[off:off + 4] == b"ALPH":
            return (data[off + 8] >> 2) & 3
        off += 8 + n + (n & 1)
    return None


def yuv_planes(lib, data):
    w, h, stride, uv_stride = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    u, v = ctypes.POINTER(ctypes.c_uint8)(), ctypes.POINTER(ctypes.c_uint8)()
    y = lib.WebPDecodeYUV(data, len(data), ctypes.byref(w), ctypes.byref(h), ctypes.byref(u), ctypes.byref(v),
                          ctypes.byref(stride), ctypes.byref(uv_stride))
    if not y:
        raise SystemExit("WebPDecodeYUV failed")
    cw, ch = (w.value + 1) // 2, (h.value + 1) // 2
    planes = [bytes(y[r * stride.value + c] for r in range(h.value) for c in range(w.value))]
    for p in (u, v):
        planes.append(bytes(p[r * uv_stride.value + c] for r in range(ch) for c in range(cw)))
    lib.WebPFree(y)  # one allocation holds all three planes
    return planes


def write_webp(path, rng, w, h, opts):
    rgb = make_rgb(rng, w, h)
    kw = {k: v for k, v in opts.items() if k not in ("alpha",)}
    if opts.get("alpha"):
        im = Image.fromarray(np.dstack([rgb, make_alpha(rng, w, h, opts["alpha"] == "columns")]), "RGBA")
    else:
        im = Image.fromarray(rgb, "RGB")
    if "alpha_filter" in kw:
        # libwebp's encoder picks the alpha filter from the content; redraw
        # the alpha until it picks the one wanted (0 none, 1 horizontal,
        # 2 vertical, 3 gradient), so the fixtures cover each.
        want = kw.pop("alpha_filter")
        for _ in range(100):
            im.save(path, "WEBP", **kw)
            if alph_filter(open(path, "rb").read()) == want:
                return
            im = Image.fromarray(np.dstack([rgb, make_alpha(rng, w, h, opts["alpha"] == "columns")]), "RGBA")
        raise SystemExit(f"{path}: libwebp never chose alpha filter {want}")
    if "exif" in kw:
        kw["exif"] = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x00"
    if "partitions" in kw:
        # Several token partitions: the VP8 decoder reads the DCT tokens of
        # macroblock row r from partition r mod 2^partitions.
        m = kw.get("method", 2)
        data = encode_partitions(lib_for_encoding(), im, kw["quality"], kw["partitions"], m)
        if data == encode_partitions(lib_for_encoding(), im, kw["quality"], 0, m):
            raise SystemExit(f"{path}: config.partitions had no effect")
        with open(path, "wb") as f:
            f.write(data)
        return
    if "cwebp" in kw:
        # libwebp's own command-line encoder: options Pillow does not pass
        # (simple loop filter, no filter, segments, sharpness, alpha
        # quantization, uncompressed alpha, ...).
        tmp = path + ".in.png"
        im.save(tmp)
        try:
            subprocess.run(["cwebp", "-quiet", *kw["cwebp"], tmp, "-o", path], check=True)
        finally:
            os.remove(tmp)
        return
    if kw.pop("alpha_flag", False):
        # A VP8X chunk whose alpha flag is set over a VP8 chunk with no ALPH
        # chunk: libwebp decodes it as opaque.
        data = encode_still(im, kw)
        n = struct.unpack("<I", data[16:20])[0]
        vp8x = bytes([0x10, 0, 0, 0]) + u24(w - 1) + u24(h - 1)
        with open(path, "wb") as f:
            f.write(riff([(b"VP8X", vp8x), (b"VP8 ", data[20:20 + n])]))
        return
    if "offset" in kw:
        # An animation whose first frame is smaller than the canvas and
        # placed off the origin, wrapped by hand around a still file's
        # chunks (Pillow's encoder writes a full first frame).
        fx, fy, cw, ch = kw.pop("offset")
        with open(path, "wb") as f:
            f.write(wrap_animation(encode_still(im, kw), fx, fy, w, h, cw, ch, bool(opts.get("alpha"))))
        return
    if kw.pop("frames", 1) > 1:
        # An animation: Pillow opens it at its first frame.
        mode = "RGBA" if opts.get("alpha") else "RGB"
        more = [Image.fromarray(np.dstack([make_rgb(rng, w, h), make_alpha(rng, w, h)]) if mode == "RGBA"
                                else make_rgb(rng, w, h), mode) for _ in range(opts["frames"] - 1)]
        im.save(path, "WEBP", save_all=True, append_images=more, duration=100, **kw)
        return
    im.save(path, "WEBP", **kw)


# ---------------------------------------------------------------------------
# PNG: a minimal encoder (Pillow writes neither 16-bit colour nor interlacing).

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)


def pack_rows(samples, depth):
    # samples: h x w x c array of integers < 2**depth; returns packed rows.
    h = samples.shape[0]
    flat = samples.reshape(h, -1)
    if depth == 16:
        return [r.astype(">u2").tobytes() for r in flat]
    if depth == 8:
        return [r.astype(np.uint8).tobytes() for r in flat]
    per = 8 // depth
    rows = []
    for r in flat:
        r = list(r) + [0] * (-len(r) % per)
        out = bytearray()
        for i in range(0, len(r), per):
            b = 0
            for s in r[i:i + per]:
                b = (b << depth) | int(s)
            out.append(b)
        rows.append(bytes(out))
    return rows


def filter_rows(rows, bpp, rng):
    # Each row gets a random PNG filter (0-4), so decoders see all five.
    out, prev = bytearray(), bytes(len(rows[0])) if rows else b""
    for row in rows:
        f = int(rng.integers(0, 5))
        line = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 0:
                p = 0
            elif f == 1:
                p = a
            elif f == 2:
                p = b
            elif f == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else b if pb <= pc else c
            line.append((x - p) & 0xff)
        out += bytes([f]) + line
        prev = row
    return bytes(out)


def encode_png(samples, depth, ctype, rng, palette=None, trns=None, interlace=False):
    h, w = samples.shape[:2]
    bpp = max(1, CHANNELS[ctype] * depth // 8)
    if interlace:
        data = b""
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                data += filter_rows(pack_rows(sub, depth), bpp, rng)
    else:
        data = filter_rows(pack_rows(samples, depth), bpp, rng)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace)))
    if palette is not None:
        out += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    if trns is not None:
        out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b"")


def png_samples(rng, w, h, depth, ctype):
    top = (1 << depth) - 1
    if depth == 16:
        # Scaled 8-bit content plus noise, and a band of small values: Pillow
        # clips 16-bit gray at 255 and keeps the high byte of colour, so both
        # ends must be present.
        base = make_rgb(rng, w, h).astype(np.int64) * 257 + rng.integers(-300, 300, (h, w, 3))
        base[: max(1, h // 3)] = rng.integers(0, 700, (max(1, h // 3), w, 3))
        base = np.clip(base, 0, top)
        alpha = np.clip(make_alpha(rng, w, h).astype(np.int64) * 257 + rng.integers(-200, 200, (h, w)), 0, top)
    else:
        base = make_rgb(rng, w, h).astype(np.int64) >> (8 - depth)
        alpha = make_alpha(rng, w, h).astype(np.int64)
    if ctype == 0:
        return base[..., :1]
    if ctype == 2:
        return base
    if ctype == 4:
        return np.dstack([base[..., :1], alpha])
    if ctype == 6:
        return np.dstack([base, alpha])
    n = min(1 << depth, int(rng.integers(2, 257)))
    return rng.integers(0, n, (h, w, 1)), n


def write_png(path, rng, w, h, opts):
    depth, ctype = opts["depth"], opts["ctype"]
    palette = trns = None
    if ctype == 3:
        samples, n = png_samples(rng, w, h, depth, ctype)
        palette = rng.integers(0, 256, (n, 3))
        if opts.get("short_palette"):
            # Indexes past the end of PLTE: libpng accepts them, and Pillow
            # gives them its default palette's gray (i, i, i).
            palette = palette[:max(1, n // 2)]
        if opts.get("trns"):
            trns = rng.integers(0, 256, int(rng.integers(1, n + 1)), dtype=np.uint8).tobytes()
    else:
        samples = png_samples(rng, w, h, depth, ctype)
        if opts.get("trns"):
            # The key colour is one that occurs in the image.
            key = samples[int(rng.integers(0, h)), int(rng.integers(0, w))]
            trns = b"".join(struct.pack(">H", int(v)) for v in key)
    with open(path, "wb") as f:
        f.write(encode_png(samples, depth, ctype, rng, palette, trns, opts.get("interlace", False)))


# ---------------------------------------------------------------------------

# name, width, height, options
FIXED_WEBP = [
    ("lossy_q75_33x31", 33, 31, dict(quality=75)),
    ("lossy_q1_16x16", 16, 16, dict(quality=1)),
    ("lossy_q100_17x9", 17, 9, dict(quality=100)),
    ("lossy_q50_1x1", 1, 1, dict(quality=50)),
    ("lossy_q90_2x3", 2, 3, dict(quality=90)),
    ("lossy_q60_64x47", 64, 47, dict(quality=60, method=6)),
    ("lossy_q80_exif_21x18", 21, 18, dict(quality=80, exif=True)),
    ("alpha_q75_31x27", 31, 27, dict(quality=75, alpha=True)),
    ("alpha_q30_exact_20x13", 20, 13, dict(quality=30, alpha=True, exact=True)),
    ("lossless_19x23", 19, 23, dict(lossless=True)),
    ("lossless_alpha_15x14", 15, 14, dict(lossless=True, alpha=True, exact=True)),
]

# Written after the PNG files (so that adding one leaves the others as they
# were); the cwebp_ ones by libwebp's cwebp (Debian's webp package).
FIXED_LATE = [
    ("animated_3frames_12x10", 12, 10, dict(quality=70, frames=3)),
    ("animated_alpha_3frames_14x11", 14, 11, dict(quality=60, alpha=True, frames=3)),
    ("animated_lossless_2frames_9x8", 9, 8, dict(lossless=True, alpha=True, frames=2)),
    ("animated_offset_17x11_on_30x20", 17, 11, dict(quality=80, alpha=True, offset=(4, 6, 30, 20))),
    ("animated_offset_opaque_9x7_on_16x12", 9, 7, dict(quality=50, offset=(6, 2, 16, 12))),
    ("alpha_vertical_q85_26x19", 26, 19, dict(quality=85, alpha="columns", alpha_filter=2)),
    ("alpha_unfiltered_q70_23x21", 23, 21, dict(quality=70, alpha=True, alpha_filter=0)),
    ("alpha_flag_without_alph_13x9", 13, 9, dict(quality=80, alpha_flag=True)),
    ("cwebp_simple_filter_35x22", 35, 22, dict(cwebp=["-q", "70", "-nostrong", "-sharpness", "5"])),
    ("cwebp_no_filter_1segment_24x17", 24, 17, dict(cwebp=["-q", "40", "-f", "0", "-segments", "1", "-sns", "0"])),
    ("cwebp_2segments_sharp_yuv_33x25", 33, 25, dict(cwebp=["-q", "85", "-segments", "2", "-sharp_yuv", "-m", "6"])),
    ("cwebp_autofilter_strong_41x19", 41, 19, dict(cwebp=["-q", "20", "-af", "-strong", "-f", "100", "-sharpness", "7"])),
    ("cwebp_alpha_q20_best_filter_27x21", 27, 21, dict(alpha=True, cwebp=["-q", "60", "-alpha_q", "20", "-alpha_filter", "best"])),
    ("cwebp_alpha_uncompressed_19x15", 19, 15, dict(alpha=True, cwebp=["-q", "90", "-alpha_method", "0", "-exact"])),
    ("partitions2_q75_37x70", 37, 70, dict(quality=75, partitions=1, method=2)),
    ("partitions8_q50_alpha_29x135", 29, 135, dict(quality=50, partitions=3, method=0, alpha=True)),
]

FIXED_PNG = [
    ("gray1_13x7", 13, 7, dict(depth=1, ctype=0)),
    ("gray2_11x6", 11, 6, dict(depth=2, ctype=0)),
    ("gray4_9x5", 9, 5, dict(depth=4, ctype=0)),
    ("gray8_trns_12x9", 12, 9, dict(depth=8, ctype=0, trns=True)),
    ("gray16_19x11", 19, 11, dict(depth=16, ctype=0)),
    ("gray16_trns_10x7", 10, 7, dict(depth=16, ctype=0, trns=True)),
    ("gray16_adam7_23x17", 23, 17, dict(depth=16, ctype=0, interlace=True)),
    ("graya8_14x9", 14, 9, dict(depth=8, ctype=4)),
    ("graya16_13x10", 13, 10, dict(depth=16, ctype=4)),
    ("rgb8_trns_11x8", 11, 8, dict(depth=8, ctype=2, trns=True)),
    ("rgb8_adam7_17x13", 17, 13, dict(depth=8, ctype=2, interlace=True)),
    ("rgb16_21x12", 21, 12, dict(depth=16, ctype=2)),
    ("rgb16_trns_9x8", 9, 8, dict(depth=16, ctype=2, trns=True)),
    ("rgba8_12x11", 12, 11, dict(depth=8, ctype=6)),
    ("rgba16_15x9", 15, 9, dict(depth=16, ctype=6)),
    ("rgba16_adam7_19x14", 19, 14, dict(depth=16, ctype=6, interlace=True)),
    ("pal1_trns_10x6", 10, 6, dict(depth=1, ctype=3, trns=True)),
    ("pal4_15x7", 15, 7, dict(depth=4, ctype=3)),
    ("pal8_trns_16x12", 16, 12, dict(depth=8, ctype=3, trns=True)),
    ("pal8_adam7_trns_13x11", 13, 11, dict(depth=8, ctype=3, trns=True, interlace=True)),
    ("pal8_short_palette_12x7", 12, 7, dict(depth=8, ctype=3, short_palette=True)),
    ("pal2_short_palette_trns_9x4", 9, 4, dict(depth=2, ctype=3, trns=True, short_palette=True)),
]


def random_cwebp_args(rng, quality, alpha):
    args = ["-q", str(quality), "-m", str(int(rng.integers(0, 7))), "-segments", str(int(rng.integers(1, 5))),
            "-sns", str(int(rng.integers(0, 101))), "-f", str(int(rng.integers(0, 101))),
            "-sharpness", str(int(rng.integers(0, 8))), rng.choice(["-strong", "-nostrong"])]
    if rng.random() < 0.3:
        args.append("-sharp_yuv")
    if alpha:
        args += ["-alpha_q", str(int(rng.integers(0, 101))), "-alpha_method", str(int(rng.integers(0, 2))),
                 "-alpha_filter", str(rng.choice(["none", "fast", "best"]))]
    return args


def random_cases(rng, count):
    depths = {0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]}
    webp, png = [], []
    for i in range(count):
        # Mostly small, some over several macroblock rows and columns.
        top = 90 if rng.random() < 0.85 else 400
        w, h = int(rng.integers(1, top)), int(rng.integers(1, top))
        if i % 2 == 0:
            opts = dict(quality=int(rng.integers(0, 101)), alpha=[False, False, True, "columns"][int(rng.integers(0, 4))])
            if rng.random() < 0.2:
                opts = dict(lossless=True, alpha=opts["alpha"])
            r = rng.random()
            if r < 0.25 and "quality" in opts and shutil.which("cwebp"):
                opts["cwebp"] = random_cwebp_args(rng, opts["quality"], bool(opts["alpha"]))
            elif r < 0.3 and "quality" in opts:
                opts["partitions"], opts["method"] = int(rng.integers(1, 4)), int(rng.integers(0, 3))
            elif r < 0.35 and "quality" in opts:
                opts["alpha_flag"] = not opts["alpha"]
            elif r < 0.4:
                opts["frames"] = int(rng.integers(2, 4))
            elif r < 0.5:
                fx, fy = 2 * int(rng.integers(0, 10)), 2 * int(rng.integers(0, 10))
                opts["offset"] = (fx, fy, fx + w + int(rng.integers(0, 9)), fy + h + int(rng.integers(0, 9)))
            webp.append((f"rand{i:02d}", w, h, opts))
        else:
            ctype = int(rng.choice([0, 2, 3, 4, 6]))
            opts = dict(depth=int(rng.choice(depths[ctype])), ctype=ctype, interlace=bool(rng.random() < 0.3))
            if ctype in (0, 2, 3) and rng.random() < 0.5:
                opts["trns"] = True
            if ctype == 3 and rng.random() < 0.2:
                opts["short_palette"] = True
            png.append((f"rand{i:02d}", w, h, opts))
    return webp, png


def record(path, name, lib, opts):
    im = Image.open(path)
    mode, fmt = im.mode, im.format
    with warnings.catch_warnings():
        # Pillow warns that a palette's tRNS is dropped: convert("RGB") is what torchvision does.
        warnings.simplefilter("ignore")
        rgb = np.asarray(im.convert("RGB"))
    with open(os.path.join(os.path.dirname(path), name + ".rgb"), "wb") as f:
        f.write(rgb.tobytes())
    c = {"file": os.path.basename(path), "width": im.size[0], "height": im.size[1], "mode": mode, "format": fmt,
         "options": opts, "frames": getattr(im, "n_frames", 1)}
    if mode in ("RGBA", "LA", "PA"):
        c["alpha_sha256"] = sha(np.asarray(im.getchannel("A")).tobytes())
    data = open(path, "rb").read()
    if fmt == "WEBP" and b"VP8 " in riff_chunks(data):
        c["yuv_sha256"] = [sha(p) for p in yuv_planes(lib, data)]
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "transforms", "pillow"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=0)
    a = ap.parse_args()
    if not features.check("webp"):
        raise SystemExit("this Pillow has no WebP support")
    lib = libwebp()
    if a.count == 0 and not shutil.which("cwebp"):
        raise SystemExit("cwebp (Debian's webp package) is needed for the committed set")
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    webp, png, late = (FIXED_WEBP, FIXED_PNG, FIXED_LATE) if a.count == 0 else random_cases(rng, a.count) + ([],)
    files = []
    for name, w, h, opts in webp:
        path = os.path.join(a.out, name + ".webp")
        write_webp(path, rng, w, h, opts)
        files.append(record(path, name, lib, opts))
    for name, w, h, opts in png:
        path = os.path.join(a.out, name + ".png")
        write_png(path, rng, w, h, opts)
        files.append(record(path, name, lib, opts))
    for name, w, h, opts in late:
        path = os.path.join(a.out, name + ".webp")
        write_webp(path, rng, w, h, opts)
        files.append(record(path, name, lib, opts))
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump({"pillow": Image.__version__, "libwebp": features.version("webp"), "seed": a.seed,
                   "files": files}, f, indent=1)


if __name__ == "__main__":
    main()
