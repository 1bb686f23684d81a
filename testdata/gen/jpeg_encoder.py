"""A small baseline JPEG encoder for test inputs Pillow cannot write: four
components with any sampling factors (YCCK or subsampled CMYK), an Adobe
APP14 marker with a chosen transform, and restart intervals.

It only makes input files; what the Go decoder is checked against is
Pillow's decoding of them (jpeg_fixtures.py). The quantization and Huffman
tables are not typed in here: they are read from a file Pillow (libjpeg)
writes at the same quality, so they are libjpeg's standard ones (ITU T.81
Annex K, scaled as jpeg_set_quality scales them).

encode(planes, factors, ...) takes full-resolution uint8 planes (H x W),
averages each down to its component's size, and codes them with a float
forward DCT, one interleaved sequential Huffman scan.
"""
import io
import math

import numpy as np
from PIL import Image

def _zigzag():
    """ZIGZAG[k] is the row-major index of the k-th coefficient in zigzag
    order: the anti-diagonals in turn, alternating direction."""
    out = []
    for d in range(15):
        cells = [(r, d - r) for r in range(8) if 0 <= d - r < 8]
        # Even diagonals run bottom-left to top-right (row decreasing).
        if d % 2 == 0:
            cells.reverse()
        out += [r * 8 + c for r, c in cells]
    return out


ZIGZAG = _zigzag()


def _segments(data):
    """Yields (marker, payload) of the marker segments before the scan."""
    i = 2
    while i < len(data):
        assert data[i] == 0xFF
        m = data[i + 1]
        n = data[i + 2] << 8 | data[i + 3]
        yield m, data[i + 4:i + 2 + n]
        if m == 0xDA:
            return
        i += 2 + n


def standard_tables(quality):
    """Returns ({id: 64 quant values in natural order}, {(class, id): (bits,
    values)}) from a sequential file Pillow writes at quality."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 140, 200)).save(buf, "JPEG", quality=quality, subsampling=0)
    quant, huff = {}, {}
    for m, p in _segments(buf.getvalue()):
        if m == 0xDB:
            while p:
                assert p[0] >> 4 == 0, "16-bit quantization table"
                q = list(p[1:65])
                nat = [0] * 64
                for k in range(64):
                    nat[ZIGZAG[k]] = q[k]
                quant[p[0] & 15] = nat
                p = p[65:]
        elif m == 0xC4:
            while p:
                bits = list(p[1:17])
                n = sum(bits)
                huff[(p[0] >> 4, p[0] & 15)] = (bits, list(p[17:17 + n]))
                p = p[17 + n:]
    return quant, huff


def _codes(bits, values):
    """Canonical Huffman codes (T.81 Annex C): {symbol: (code, length)}."""
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


class _Bits:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, v, n):
        for i in range(n - 1, -1, -1):
            self.acc = self.acc << 1 | (v >> i) & 1
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc, self.n = 0, 0

    def flush(self):
        # Pad the last byte with 1 bits.
        while self.n:
            self.put(1, 1)


def _category(v):
    s = abs(int(v)).bit_length()
    bits = v if v >= 0 else v + (1 << s) - 1
    return s, int(bits) & ((1 << s) - 1)


def _dct_matrix():
    m = np.zeros((8, 8))
    for u in range(8):
        c = math.sqrt(0.5) if u == 0 else 1.0
        for x in range(8):
            m[u, x] = 0.5 * c * math.cos((2 * x + 1) * u * math.pi / 16)
    return m


DCT = _dct_matrix()


def encode(planes, factors, quality=85, tables=None, adobe_transform=None, restart_interval=0):
    """Returns the bytes of a baseline JPEG of the given full-resolution
    planes (uint8, H x W each), component i sampled factors[i] = (h, v),
    using quantization and Huffman table set tables[i] (0 or 1, libjpeg's
    luminance and chrominance ones). adobe_transform None writes no APP14
    marker."""
    n = len(planes)
    H, W = planes[0].shape
    tables = tables or [0] * n
    hmax = max(h for h, _ in factors)
    vmax = max(v for _, v in factors)
    assert sum(h * v for h, v in factors) <= 10, "more than 10 blocks in an MCU"
    mcux, mcuy = -(-W // (8 * hmax)), -(-H // (8 * vmax))
    quant, huff = standard_tables(quality)
    dc_codes = {t: _codes(*huff[(0, t)]) for t in (0, 1)}
    ac_codes = {t: _codes(*huff[(1, t)]) for t in (0, 1)}

    # Each component's coefficient blocks, [by][bx] -> 64 ints, natural order.
    comps = []
    for p, (h, v), t in zip(planes, factors, tables):
        assert hmax % h == 0 and vmax % v == 0
        rh, rv = hmax // h, vmax // v
        cw, ch = -(-W * h // hmax), -(-H * v // vmax)
        # Average rh x rv cells of the edge-extended plane.
        full = np.pad(p.astype(np.float64), ((0, ch * rv - H), (0, cw * rh - W)), mode="edge")
        small = full.reshape(ch, rv, cw, rh).mean(axis=(1, 3))
        bw, bh = mcux * h, mcuy * v
        padded = np.pad(small, ((0, 8 * bh - ch), (0, 8 * bw - cw)), mode="edge") - 128
        blocks = padded.reshape(bh, 8, bw, 8).transpose(0, 2, 1, 3)
        coef = np.einsum("ux,abxy,vy->abuv", DCT, blocks, DCT)
        q = np.array(quant[t], dtype=np.float64).reshape(8, 8)
        comps.append(np.rint(coef / q).astype(np.int64).reshape(bh, bw, 64))

    bits = _Bits()
    preds = [0] * n
    rst = 0

    def block(ci, blk):
        t = tables[ci]
        s, v = _category(blk[0] - preds[ci])
        preds[ci] = int(blk[0])
        bits.put(*dc_codes[t][s])
        bits.put(v, s)
        run = 0
        for k in range(1, 64):
            x = int(blk[ZIGZAG[k]])
            if x == 0:
                run += 1
                continue
            while run > 15:
                bits.put(*ac_codes[t][0xF0])
                run -= 16
            s, v = _category(x)
            bits.put(*ac_codes[t][run << 4 | s])
            bits.put(v, s)
            run = 0
        if run:
            bits.put(*ac_codes[t][0])

    for m in range(mcux * mcuy):
        if restart_interval and m and m % restart_interval == 0:
            bits.flush()
            bits.out += bytes([0xFF, 0xD0 + rst])
            rst = (rst + 1) % 8
            preds = [0] * n
        my, mx = divmod(m, mcux)
        for ci, (h, v) in enumerate(factors):
            for by in range(v):
                for bx in range(h):
                    block(ci, comps[ci][my * v + by, mx * h + bx])
    bits.flush()

    out = bytearray(b"\xff\xd8")

    def seg(marker, payload):
        out.extend([0xFF, marker, (len(payload) + 2) >> 8, (len(payload) + 2) & 0xFF])
        out.extend(payload)

    if adobe_transform is not None:
        # "Adobe", version 100, flags0, flags1, transform.
        seg(0xEE, b"Adobe" + bytes([0, 100, 0, 0, 0, 0, adobe_transform]))
    for t in sorted(set(tables)):
        seg(0xDB, bytes([t]) + bytes(quant[t][ZIGZAG[k]] for k in range(64)))
    sof = bytes([8, H >> 8, H & 0xFF, W >> 8, W & 0xFF, n])
    for ci, ((h, v), t) in enumerate(zip(factors, tables)):
        sof += bytes([ci + 1, h << 4 | v, t])
    seg(0xC0, sof)
    for t in sorted(set(tables)):
        for tc in (0, 1):
            b, vals = huff[(tc, t)]
            seg(0xC4, bytes([tc << 4 | t] + b + vals))
    if restart_interval:
        seg(0xDD, bytes([restart_interval >> 8, restart_interval & 0xFF]))
    sos = bytes([n])
    for ci, t in enumerate(tables):
        sos += bytes([ci + 1, t << 4 | t])
    seg(0xDA, sos + bytes([0, 63, 0]))
    out += bits.out
    out += b"\xff\xd9"
    return bytes(out)
