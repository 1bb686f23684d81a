package pickle

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// zipDirectory reads the local-header offsets of an archive's members from
// its central directory, in directory order, as archive/zip finds them (the
// last end-of-central-directory record whose comment fits, zip64 records
// when the 32-bit fields are saturated), and base, the number of bytes
// archive/zip takes to be prepended to the archive. torch's reader (miniz)
// takes no prepended bytes: base must be 0. dir is where the central
// directory starts.
func zipDirectory(r interface {
	ReadAt([]byte, int64) (int, error)
}, size int64) (offsets []int64, base, dir int64, err error) {
	le := binary.LittleEndian
	errFormat := errors.New("zip: not a valid zip file")
	var eocd int64 = -1
	var rec []byte
	for _, n := range []int64{1024, 65 * 1024} {
		n = min(n, size)
		buf := make([]byte, n)
		if m, _ := r.ReadAt(buf, size-n); int64(m) != n {
			return nil, 0, 0, errFormat
		}
		for p := len(buf) - 22; p >= 0; p-- {
			if bytes.Equal(buf[p:p+4], []byte("PK\x05\x06")) && p+22+int(le.Uint16(buf[p+20:])) <= len(buf) {
				eocd, rec = size-n+int64(p), buf[p:]
				break
			}
		}
		if eocd >= 0 || n == size {
			break
		}
	}
	if eocd < 0 {
		return nil, 0, 0, errFormat
	}
	count := uint64(le.Uint16(rec[10:]))
	dsize := uint64(le.Uint32(rec[12:]))
	doff := uint64(le.Uint32(rec[16:]))
	end := eocd
	// A zip64 end record (torch always writes one) is used when its locator
	// is there, as Python's zipfile does, so that end is where the
	// directory really ends.
	{
		var loc [20]byte
		if eocd >= 20 {
			if _, err := r.ReadAt(loc[:], eocd-20); err == nil && bytes.Equal(loc[:4], []byte("PK\x06\x07")) {
				// Where the record is: just before its locator, as Python's
				// zipfile looks (the locator's own offset ignores bytes
				// prepended to the archive).
				p := eocd - 20 - 56
				var z [56]byte
				if p >= 0 && p <= size-56 {
					if _, err := r.ReadAt(z[:], p); err == nil && bytes.Equal(z[:4], []byte("PK\x06\x06")) {
						count, dsize, doff, end = le.Uint64(z[32:]), le.Uint64(z[40:]), le.Uint64(z[48:]), p
					}
				}
			}
		}
	}
	if dsize > uint64(size) || doff > uint64(size) || count > MaxEntries {
		return nil, 0, 0, errFormat
	}
	base = end - int64(dsize) - int64(doff)
	if base > 0 {
		var sig [4]byte
		if _, err := r.ReadAt(sig[:], int64(doff)); err == nil && bytes.Equal(sig[:], []byte("PK\x01\x02")) {
			base = 0
		}
	}
	pos := base + int64(doff)
	for i := uint64(0); i < count; i++ {
		var h [46]byte
		if _, err := r.ReadAt(h[:], pos); err != nil || !bytes.Equal(h[:4], []byte("PK\x01\x02")) {
			return nil, 0, 0, errFormat
		}
		nlen, xlen, clen := int64(le.Uint16(h[28:])), int64(le.Uint16(h[30:])), int64(le.Uint16(h[32:]))
		off := uint64(le.Uint32(h[42:]))
		if off == 0xffffffff {
			extra := make([]byte, xlen)
			if _, err := r.ReadAt(extra, pos+46+nlen); err != nil {
				return nil, 0, 0, errFormat
			}
			for len(extra) >= 4 {
				id, n := le.Uint16(extra), int(le.Uint16(extra[2:]))
				if 4+n > len(extra) {
					break
				}
				if id == 1 {
					f := extra[4 : 4+n]
					if le.Uint32(h[24:]) == 0xffffffff && len(f) >= 8 {
						f = f[8:]
					}
					if le.Uint32(h[20:]) == 0xffffffff && len(f) >= 8 {
						f = f[8:]
					}
					if len(f) >= 8 {
						off = le.Uint64(f)
					}
				}
				extra = extra[4+n:]
			}
		}
		offsets = append(offsets, base+int64(off))
		pos += 46 + nlen + xlen + clen
	}
	return offsets, base, base + int64(doff), nil
}
