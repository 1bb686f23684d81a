package pickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
)

// FormatPickle is Report.Format for a file that is one bare pickle
// (pickle.dump, joblib), not a torch.save file.
const FormatPickle = "pickle"

// Report is what Scan found in one file.
type Report struct {
	// Format is FormatZip, FormatTorchScript, FormatLegacy, FormatTar,
	// FormatPickle or FormatJoblib: what torch.load (or pickle.load, or
	// joblib.load) takes the file for.
	Format string
	// Findings are in file order within each part of the file.
	Findings []Finding
	// Errors name the parts of the file that could not be read to the end;
	// a file with errors is never clean, whatever its findings.
	Errors []error
	// Companions are the files beside this one that joblib.load would
	// open while loading it (see Companion): Scan reads only r, so the
	// caller, who knows the file's directory, scans them.
	Companions []Companion
}

// ScanPickle walks one pickle at the start of data statically, as
// CPython's C unpickler would read it, and returns what torch.load would act
// on: every global (GLOBAL, INST, STACK_GLOBAL with its names followed
// through the stack and the memo, Python 2 names renamed as CPython renames
// them) that is outside the allow-list, every call (REDUCE, INST, OBJ,
// NEWOBJ) the allow-list refuses, and every anomaly the reader refuses. It
// does not stop at the first: findings before a parse error stand, since
// CPython would have acted on them before failing. n is the pickle's length
// through STOP when err is nil. Offsets are relative to data.
func ScanPickle(data []byte) (findings []Finding, n int, err error) {
	return scanPickle(data, true)
}

// Scan reads the size-byte file r the way torch.load would (the format is
// taken from the content as torch takes it: a zip archive when it starts
// with a local file header, a tar archive when its first block is a valid
// tar header, a pickle stream otherwise) and reports every finding in every
// part of it: each pickle of a zip archive (data.pkl, constants.pkl, any
// other .pkl member), TorchScript code, the five pickles of a legacy file,
// every pickle of a tar file's members, container anomalies; a metadata
// record (MetadataRecord) the reader would refuse is an error. It never runs
// the file's pickles through the VM before they are scanned, and never
// executes anything.
func Scan(r io.ReaderAt, size int64) *Report {
	s := &scanner{r: r, size: size, rep: &Report{}}
	head := make([]byte, min(size, 512))
	if size <= 0 {
		s.fail(errors.New("pickle: empty file"))
		return s.rep
	}
	if n, err := r.ReadAt(head, 0); n < len(head) {
		s.fail(fmt.Errorf("pickle: %w", err))
		return s.rep
	}
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		s.zip()
	case IsTarHeader(head):
		s.rep.Format = FormatTar
		s.tar()
	case joblibCompression(head) != "":
		s.joblibCompressed(joblibCompression(head))
	default:
		s.stream()
		if s.rep.Format == FormatPickle && s.namesJoblibWrapper() {
			// joblib.dump's arrays: joblib.load reads each one's bytes
			// after its wrapper, where pickle.load would read opcodes.
			*s = scanner{r: r, size: size, rep: &Report{}}
			s.rep.Format = FormatJoblib
			s.joblibStream(io.NewSectionReader(r, 0, size), "pickle")
		} else if s.rep.Format == FormatPickle && len(s.rep.Errors) == 0 && s.namesCompanionWrapper() {
			s.companions()
		}
	}
	s.readerAgrees()
	if s.log.dropped > 0 {
		s.rep.Findings = append(s.rep.Findings, Finding{Severity: s.log.worst, Global: "more-findings", Anomaly: true,
			Description: fmt.Sprintf("%d more findings of this file are not listed (at most %d are)", s.log.dropped, MaxFindings)})
	}
	return s.rep
}

// readerAgrees loads a torch file that scanned without errors and without
// findings above LOW with the reader, so that a file is never clean to the
// scanner and refused by the reader: a refusal is an error of the scan.
func (s *scanner) readerAgrees() {
	if s.rep.Format == FormatPickle || s.rep.Format == FormatJoblib || len(s.rep.Errors) > 0 || !s.clean(0) {
		return
	}
	f, err := Load(s.r, s.size)
	if err != nil {
		s.fail(fmt.Errorf("%w (the reader refuses the file)", err))
		return
	}
	f.Close()
}

type scanner struct {
	r    io.ReaderAt
	size int64
	rep  *Report
	read int64   // pickle bytes read, see budget
	log  scanLog // counts the findings past MaxFindings for the file
}

func (s *scanner) fail(err error) { s.rep.Errors = append(s.rep.Errors, err) }

// namesJoblibWrapper reports whether the pickle names joblib's array
// wrapper class.
func (s *scanner) namesJoblibWrapper() bool {
	for _, f := range s.rep.Findings {
		if f.Global == joblibWrapper {
			return true
		}
	}
	return false
}

func (s *scanner) add(entry string, base int64, fs []Finding) {
	for _, f := range fs {
		f.Entry = entry
		f.Offset += base
		if len(s.rep.Findings) >= MaxFindings {
			s.log.add(f) // counted only
			continue
		}
		s.rep.Findings = append(s.rep.Findings, f)
	}
}

// budget charges n bytes of pickles read to the file's MaxScanBytes and
// reports whether they fit.
func (s *scanner) budget(n int64) bool {
	s.read += n
	if s.read > MaxScanBytes {
		s.fail(fmt.Errorf("pickle: the file's pickles exceed %d bytes, the scan limit", int64(MaxScanBytes)))
		return false
	}
	return true
}

// MaxScanBytes bounds the pickle bytes Scan reads from one file, over all
// its pickles (zip members, tar records).
const MaxScanBytes = 4 * MaxPickleSize

// pickleAt scans the pickle at off, before end, growing the window read as
// streamPickle does. It returns the pickle's bytes, or nil after recording
// why the walk stopped.
func (s *scanner) pickleAt(off, end int64, entry string) []byte {
	window := int64(64 << 10)
	for {
		n := min(window, end-off, MaxPickleSize)
		if n <= 0 {
			s.fail(fmt.Errorf("pickle: %s: no pickle at offset %d, the file ends", entry, off))
			return nil
		}
		if !s.budget(n) {
			return nil
		}
		data, err := readSection(s.r, off, n, entry)
		if err != nil {
			s.fail(err)
			return nil
		}
		fs, used, err := scanPickle(data, true)
		if err != nil && errors.Is(err, errTruncated) && n < end-off && n < MaxPickleSize {
			window *= 4
			continue
		}
		s.add(entry, off, fs)
		if err != nil {
			s.fail(fmt.Errorf("%w (in %s, pickle at file offset %d)", err, entry, off))
			return nil
		}
		return data[:used]
	}
}

// clean reports whether findings from index i on include nothing that
// keeps the reader from decoding the pickle.
func (s *scanner) clean(i int) bool {
	for _, f := range s.rep.Findings[i:] {
		if f.Severity >= SeverityMedium {
			return false
		}
	}
	return true
}

// stream scans a legacy file (five pickles) or a bare pickle.
func (s *scanner) stream() {
	names := []string{"magic number", "protocol version", "sys_info", "the object", "storage keys"}
	off := int64(0)
	for i := range names {
		entry := fmt.Sprintf("pickle %d of 5 (%s)", i+1, names[i])
		if i == 0 {
			entry = "pickle 1"
		}
		p := s.pickleAt(off, s.size, entry)
		if p == nil {
			break
		}
		if i == 0 {
			if !isLegacyMagic(p) {
				// pickle.load reads one pickle; torch.load reads it and
				// stops at its wrong magic number. Loaders that read on
				// (pickles dumped one after the other) would find more:
				// the pickles that follow are scanned too, until the
				// bytes stop being a pickle.
				s.rep.Format = FormatPickle
				s.more(off + int64(len(p)))
				break
			}
			s.rep.Format = FormatLegacy
			s.rep.Findings = relabel(s.rep.Findings, "pickle 1", "pickle 1 of 5 (magic number)")
		}
		off += int64(len(p))
	}
	if s.rep.Format == "" {
		s.rep.Format = FormatPickle
	}
	if _, _, _, err := zipDirectory(s.r, s.size); err == nil {
		s.add("", 0, []Finding{{Severity: SeverityMedium, Global: "pickle-zip-polyglot", Anomaly: true,
			Description: "the file is a pickle stream and also a zip archive: torch.load reads the leading pickle, zip-based tools and scanners see the archive's members"}})
	}
}

// more scans the pickles that follow a bare pickle at off, up to 16, and
// keeps their findings; where the bytes stop being a pickle the walk ends
// without an error (trailing data is no concern of pickle.load).
func (s *scanner) more(off int64) {
	for i := 2; i <= 16 && off < s.size; i++ {
		n := min(s.size-off, MaxPickleSize)
		if !s.budget(n) {
			return
		}
		data, err := readSection(s.r, off, n, "pickle")
		if err != nil {
			return
		}
		fs, used, err := scanPickle(data, true)
		if err != nil && len(fs) == 0 {
			return
		}
		s.add(fmt.Sprintf("pickle %d", i), off, fs)
		if err != nil {
			s.fail(fmt.Errorf("%w (in pickle %d, at file offset %d)", err, i, off))
			return
		}
		off += int64(used)
	}
}

func relabel(fs []Finding, from, to string) []Finding {
	for i := range fs {
		if fs[i].Entry == from {
			fs[i].Entry = to
		}
	}
	return fs
}

// isLegacyMagic reports whether p is a pickle of torch's legacy magic
// number (LONG1 of its 10 little-endian bytes, as torch writes it at any
// protocol), the decoded value checked too.
func isLegacyMagic(p []byte) bool {
	mag := legacyMagic.Bytes() // big-endian
	le := make([]byte, len(mag))
	for i, b := range mag {
		le[len(mag)-1-i] = b
	}
	if !bytes.Contains(p, le) && !bytes.Contains(p, []byte(legacyMagic.String())) {
		return false
	}
	v, _, err := unpickle(p, nil)
	m, ok := v.(*big.Int)
	return err == nil && ok && m.Cmp(legacyMagic) == 0
}

// IsTarHeader reports whether block, a file's first 512 bytes, is a tar
// header Python's tarfile accepts (torch.load tries it first on a file
// that is not a zip, whatever its magic): its checksum field matches the
// unsigned or the signed sum of the block.
func IsTarHeader(block []byte) bool {
	if len(block) < 512 {
		return false
	}
	// tarfile's nti: base-256 when the first byte is 0200 or 0377, else
	// octal text up to the first NUL, white space stripped.
	f := block[148:156]
	var want int64
	if f[0] == 0o200 || f[0] == 0o377 {
		for _, b := range f[1:] {
			want = want<<8 | int64(b)
		}
		if f[0] == 0o377 {
			want -= 1 << 56
		}
	} else {
		t, _, _ := strings.Cut(string(f), "\x00")
		if t = strings.TrimSpace(t); t != "" {
			v, err := strconv.ParseUint(t, 8, 63)
			if err != nil {
				return false
			}
			want = int64(v)
		}
	}
	u, sg := int64(256), int64(256) // the checksum field counts as 8 spaces
	for i, b := range block[:512] {
		if i < 148 || i >= 156 {
			u += int64(b)
			sg += int64(int8(b))
		}
	}
	return want == u || want == sg
}

// zip scans a zip archive (torch.save >= 1.6 or torch.jit.save).
func (s *scanner) zip() {
	s.rep.Format = FormatZip
	zr, err := zip.NewReader(s.r, s.size)
	if err != nil {
		s.fail(fmt.Errorf("pickle: zip: %w", zipCause(err)))
		return
	}
	if len(zr.File) > MaxEntries {
		s.fail(fmt.Errorf("pickle: zip: %d entries exceed limit %d", len(zr.File), MaxEntries))
		return
	}
	for _, a := range zipAnomalies(s.r, s.size, zr.File) {
		s.add(a.Entry, 0, []Finding{{Severity: SeverityMedium, Offset: a.Offset, Global: a.Name, Anomaly: true, Description: a.Msg}})
	}
	code := ""
	for _, f := range zr.File {
		low := lowerASCII(f.Name)
		rest := low
		if i := strings.IndexByte(low, '/'); i >= 0 {
			rest = low[i+1:]
		}
		if rest == "constants.pkl" {
			s.rep.Format = FormatTorchScript
		}
		if strings.HasPrefix(rest, "code/") && code == "" {
			code = f.Name
		}
		if rest == MetadataRecord {
			// Not a pickle, but the reader refuses a file whose record
			// it cannot decode.
			if _, err := metadataMember(f); err != nil {
				s.fail(err)
			}
			continue
		}
		if !strings.HasSuffix(low, ".pkl") {
			continue
		}
		if !s.budget(int64(f.UncompressedSize64)) {
			break
		}
		data, err := readMember(f)
		if err != nil {
			s.fail(err)
			continue
		}
		var base int64
		if f.Method == zip.Store {
			if off, err := f.DataOffset(); err == nil {
				base = off
			}
		}
		fs, _, err := scanPickle(data, true)
		s.add(f.Name, base, fs)
		if err != nil {
			s.fail(fmt.Errorf("%w (in %q)", err, f.Name))
		}
	}
	if code != "" {
		s.add(code, 0, []Finding{{Severity: SeverityLow, Global: "torchscript-code", Anomaly: true,
			Description: "the archive holds TorchScript code, which torch.jit.load compiles and runs (ckpt only reads its parameter lists)"}})
	}
}

// tar scans the members of a torch tar file (torch 0.1.1 to 0.1.9): the
// pickles sys_info and pickle whole, and the pickles inside the storages
// and tensors members by following their layout, decoding each header only
// after it scanned clean.
func (s *scanner) tar() {
	m, err := tarMembers(s.r, s.size)
	if err != nil {
		s.fail(err)
		return
	}
	for _, name := range []string{"sys_info", "pickle"} {
		if mm, ok := m[name]; ok {
			s.pickleAt(mm.off, mm.off+mm.size, "tar member "+name)
		}
	}
	s.tarRecords(m["storages"], "tar member storages", true)
	s.tarRecords(m["tensors"], "tar member tensors", false)
}

// tarRecords walks the storages (or tensors) member: pickle(count), then
// per record a header pickle and its binary data; the storages member ends
// with the views pickle.
func (s *scanner) tarRecords(mm tarMember, entry string, storages bool) {
	off, end := mm.off, mm.off+mm.size
	decode := func() (any, bool) {
		i := len(s.rep.Findings)
		p := s.pickleAt(off, end, entry)
		if p == nil {
			return nil, false
		}
		if !s.clean(i) {
			s.fail(fmt.Errorf("pickle: %s: cannot follow the member's layout past a pickle it refuses (offset %d)", entry, off))
			return nil, false
		}
		v, _, err := unpickle(p, nil)
		if err != nil {
			s.fail(fmt.Errorf("%w (in %s at offset %d)", err, entry, off))
			return nil, false
		}
		off += int64(len(p))
		return v, true
	}
	cv, ok := decode()
	if !ok {
		return
	}
	count, err := toInt(cv)
	if err != nil || count < 0 || count > MaxStorages {
		s.fail(fmt.Errorf("pickle: %s: invalid record count %s", entry, brief(cv)))
		return
	}
	var b8 [8]byte
	for i := int64(0); i < count; i++ {
		hv, ok := decode()
		if !ok {
			return
		}
		if off > end-8 {
			s.fail(fmt.Errorf("pickle: %s: truncated member", entry))
			return
		}
		if _, err := s.r.ReadAt(b8[:], off); err != nil {
			s.fail(fmt.Errorf("pickle: %s: %w", entry, err))
			return
		}
		if storages {
			h, err := decoded(hv)
			size := int64(0)
			if err == nil && len(h) == 3 {
				if g, ok := h[2].(*Global); ok {
					if d, ok := storageDTypes[g.Name]; ok {
						size = map[string]int64{"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1, "bool": 1}[d]
					}
				}
			}
			numel := int64(binary.LittleEndian.Uint64(b8[:]))
			if size == 0 || numel < 0 || numel > (end-off-8)/size {
				s.fail(fmt.Errorf("pickle: %s: storage record %d is not (key, location, storage type) with its elements", entry, i))
				return
			}
			off += 8 + numel*size
		} else {
			ndim := int64(int32(binary.LittleEndian.Uint32(b8[:4])))
			if ndim < 0 || ndim > 64 || off+8+16*ndim+8 > end {
				s.fail(fmt.Errorf("pickle: %s: tensor record %d is truncated", entry, i))
				return
			}
			off += 8 + 16*ndim + 8
		}
	}
	if storages {
		s.pickleAt(off, end, entry)
	}
}
