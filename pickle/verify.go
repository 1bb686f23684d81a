package pickle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The validating pass.
//
// gopickle's VM (v0.3.0) trusts its input. Read against its source, it
//   - indexes `dispatch [math.MaxUint8]func` with the opcode byte: 0xff is
//     out of range (panic);
//   - decodes LONG1/LONG4 with decodeLong, which reads bytes[len-1]: a
//     zero length panics;
//   - allocates make([]byte, n) before reading for FRAME, BINBYTES8,
//     BINUNICODE8, BYTEARRAY8, BINUNICODE, BINBYTES and LONG4: a huge n is
//     an unrecoverable out-of-memory;
//   - builds DICT and SETITEMS with items[i+1]: an odd count panics;
//   - pushes nil for a GET of an unset memo entry;
//   - hashes keys into Go maps for OrderedDict and sets: a bytes key panics;
//   - resolves collections.OrderedDict, builtins.list/dict,
//     __builtin__.object, array._array_reconstructor and
//     copy_reg._reconstructor itself, before any FindClass hook.
// Before a pickle reaches it, verify walks the whole
// opcode stream once, as pickletools.genops does, and simulates the stack
// with typed placeholders. It refuses:
//   - unknown opcodes, opcodes gopickle does not implement safely (EXT*,
//     NEXT_BUFFER) and persistent ids where the format has none;
//   - any argument that runs past the end of the data or of its FRAME, and
//     frames that overlap;
//   - stack underflow, an odd number of items for DICT or SETITEMS, a POP or
//     a collection opcode without its MARK, a GET of an unset memo entry;
//   - a global outside the allow-list (see policy.go): dangerous modules in
//     any use, any call (REDUCE, INST, OBJ) of something not allow-listed,
//     NEWOBJ of anything but a plain class, and STACK_GLOBAL whose names are
//     not string constants;
//   - bytes used as a dict key or set member (unhashable in gopickle);
//   - what CPython reads differently from gopickle or a naive parser (see
//     rules.go): text numbers and memo keys that are not plain decimals,
//     escaped or non-ASCII protocol 0 strings, strings that are not UTF-8,
//     dotted global names, module names CPython cannot import, Python 2
//     names at protocol 3 and above, BUILD on a global itself,
//     copyreg._reconstructor with a base other than object;
//   - more than MaxOps opcodes, MaxStack items, MaxMarks nested marks,
//     MaxMemo memo entries, MaxLine-byte lines, MaxDigits-digit numbers.
//
// Globals are classified as CPython resolves them: below protocol 3, Python
// 2 names are renamed first (commands.getoutput is subprocess.getoutput).
// In scan mode (see Scan) the pass does not stop at what torch.load would
// act on: it records a finding and walks on, reading as CPython does.
//
// It renames GLOBAL collections.OrderedDict (see odAlias) and rewrites the
// zero-length LONG1 and LONG4 encodings of 0 (written
// by Python 2), which crash gopickle, into BININT1/BININT of the same
// length, in a copy of the data.

const (
	kOther uint8 = iota
	kMark
	kStr
	kBytes
	kGlobal
	kPersid
)

// item is the validating pass's placeholder for a stack or memo value.
// For kStr, a and b delimit the string in the data; for kGlobal, a indexes
// the list of globals seen.
type item struct {
	kind uint8
	a, b int
	dec  *string // for kStr of STRING and UNICODE with escapes: the decoded text
	// base describes a 3-tuple's second item, what copyreg._reconstructor
	// calls: 0 not a known 3-tuple, -1 not a global, else 1 + its index in
	// the globals seen.
	base int
	// cls is, for a 3-tuple whose first item is a global, 1 + its index
	// in the globals seen (the class copyreg._reconstructor makes).
	cls int
	// jw marks a joblib NumpyArrayWrapper (made by NEWOBJ, or by
	// copyreg._reconstructor at protocols 0 and 1) in a joblib scan: a
	// BUILD on it is followed by the array's bytes (see joblib.go).
	jw bool
}

// triple returns the placeholder of the 3-tuple of items.
func triple(items []item) item {
	it := item{base: -1}
	if items[1].kind == kGlobal {
		it.base = 1 + items[1].a
	}
	if items[0].kind == kGlobal {
		it.cls = 1 + items[0].a
	}
	return it
}

type verifier struct {
	data     []byte
	pos      int
	frameEnd int // 0 when not inside a frame
	stack    []item
	marks    []int // stack lengths at each MARK
	memo     map[int]item
	globals  []global
	persid   bool
	patched  bool
	ops      int
	work     int64 // estimated bytes the VM will allocate
	proto    int   // the last PROTO opcode's argument, 0 before one
	// scan, when not nil, turns the refusals of what torch.load would act
	// on (forbidden globals and calls, reader-only rules) into findings
	// and walks on to the end of the pickle; see Scan.
	scan *scanLog
}

// opCost estimates what gopickle allocates for each opcode, beyond its
// argument (charged in counted and line): a MARK saves the stack and starts
// a 16-slot one, a call or object creation builds maps and slices.
var opCost = func() (c [256]int64) {
	for i := range c {
		c[i] = 32
	}
	c['('] = 320
	for _, op := range []byte{'R', 0x81, 0x92, 'b', 'i', 'o', 'c', 0x93} {
		c[op] = 640
	}
	for _, op := range []byte{'}', 'd', ']', 'l', ')', 't', 0x85, 0x86, 0x87, 0x8f, 0x91} {
		c[op] = 512
	}
	return c
}()

type global struct {
	module, name string
	cat          category
}

// verify checks the pickle at the start of data and returns its length
// through the STOP opcode and the bytes to give to the VM (data[:n], or a
// patched copy). persid says whether persistent ids are expected.
func verify(data []byte, persid bool) (n int, out []byte, err error) {
	v := &verifier{data: data, persid: persid, memo: make(map[int]item)}
	if err := v.run(); err != nil {
		return 0, nil, err
	}
	return v.pos, v.data[:v.pos], nil
}

func (v *verifier) errf(off int, format string, args ...any) error {
	return fmt.Errorf("pickle: %s at offset %d", fmt.Sprintf(format, args...), off)
}

// errTruncated marks errors caused by the data ending before the pickle's
// STOP, so that readers of pickle streams can retry with more data.
var errTruncated = errors.New("truncated pickle")

func (v *verifier) truncf(off int, format string, args ...any) error {
	return fmt.Errorf("pickle: %s at offset %d: %w", fmt.Sprintf(format, args...), off, errTruncated)
}

// take returns the next n bytes, checked against the data and the frame.
func (v *verifier) take(n int, op int) ([]byte, error) {
	end := len(v.data)
	if v.frameEnd > 0 {
		end = v.frameEnd
	}
	if n < 0 || n > end-v.pos {
		if v.frameEnd > 0 && n >= 0 && n <= len(v.data)-v.pos {
			if v.scan == nil {
				return nil, v.errf(op, "argument of %d bytes crosses the end of its frame", n)
			}
			if err := v.crossFrame(op); err != nil {
				return nil, err
			}
			return v.take(n, op)
		}
		return nil, v.truncf(op, "argument of %d bytes, %d left", n, end-v.pos)
	}
	b := v.data[v.pos : v.pos+n]
	v.pos += n
	return b, nil
}

// crossFrame handles an argument that crosses the end of its frame:
// pickle.loads (the C unpickler on bytes) ignores frame boundaries, the C
// unpickler on a file (torch.load) reads other bytes, pickle._Unpickler
// refuses them (testdata/gen/pickle_divergence.py records all three). The
// reader refuses; a scan notes it and reads on as pickle.loads does.
func (v *verifier) crossFrame(op int) error {
	if v.scan == nil {
		return v.errf(op, "argument crosses the end of its frame")
	}
	v.scan.anomaly(op, "frame-straddle", "an opcode's argument crosses the end of its FRAME: pickle.loads reads on as if there were no frame, CPython's file unpickler (torch.load's) reads other bytes and Python's pickle refuses it; the scan reads on without the frame")
	v.frameEnd = 0
	return nil
}

func (v *verifier) line(op int, limit int) ([]byte, error) {
	end := len(v.data)
	if v.frameEnd > 0 {
		end = v.frameEnd
	}
	for i := v.pos; i < end; i++ {
		if v.data[i] == '\n' {
			if i-v.pos > limit {
				return nil, v.errf(op, "line argument of %d bytes exceeds limit %d", i-v.pos, limit)
			}
			b := v.data[v.pos:i]
			v.pos = i + 1
			v.work += 2 * int64(len(b))
			return b, nil
		}
		if i-v.pos > limit {
			return nil, v.errf(op, "line argument exceeds limit %d", limit)
		}
	}
	if v.frameEnd > 0 {
		if v.scan == nil {
			return nil, v.errf(op, "line argument crosses the end of its frame")
		}
		if err := v.crossFrame(op); err != nil {
			return nil, err
		}
		return v.line(op, limit)
	}
	return nil, v.truncf(op, "unterminated line argument")
}

func (v *verifier) push(it item, op int) error {
	if len(v.stack) >= limit.stack {
		return v.errf(op, "stack exceeds %d items", limit.stack)
	}
	v.stack = append(v.stack, it)
	return nil
}

// segment returns the number of items above the topmost mark.
func (v *verifier) segment() int {
	if len(v.marks) == 0 {
		return len(v.stack)
	}
	return len(v.stack) - v.marks[len(v.marks)-1]
}

func (v *verifier) need(n int, op int, name string) error {
	if v.segment() < n {
		return v.errf(op, "%s needs %d stack items, %d available", name, n, v.segment())
	}
	return nil
}

func (v *verifier) pop() item {
	it := v.stack[len(v.stack)-1]
	v.stack = v.stack[:len(v.stack)-1]
	return it
}

// popMark removes the items above the topmost mark and the mark, returning
// the removed items (valid until the next push).
func (v *verifier) popMark(op int, name string) ([]item, error) {
	if len(v.marks) == 0 {
		return nil, v.errf(op, "%s without MARK", name)
	}
	m := v.marks[len(v.marks)-1]
	v.marks = v.marks[:len(v.marks)-1]
	items := v.stack[m:]
	v.stack = v.stack[:m]
	return items, nil
}

func (v *verifier) str(it item) string {
	if it.dec != nil {
		return *it.dec
	}
	return string(v.data[it.a : it.a+it.b])
}

// addGlobal classifies the global CPython looks up for module and name
// (see resolve) and returns its placeholder. opName is GLOBAL, INST or
// STACK_GLOBAL.
func (v *verifier) addGlobal(module, name string, op int, opName string) (item, error) {
	raw := module + "." + name
	if !strings.ContainsAny(module+name, "\n\x00") && !pyModuleName(module) {
		// CPython's import fails before anything runs.
		return item{}, v.errf(op, "%s of module %q, which is not a Python module name", opName, module)
	}
	if v.proto >= 3 && (compatMissing[module] || compatMissing[module+"\n"+name]) {
		// CPython renames Python 2 names below protocol 3 only: here its
		// import or lookup fails.
		return item{}, v.errf(op, "%s of Python 2 name %s.%s in a protocol %d pickle, which CPython cannot find", opName, module, name, v.proto)
	}
	module, name = resolve(module, name, v.proto)
	cat := classify(module, name)
	if v.scan != nil {
		v.scan.global(op, opName, module, name, cat)
	} else if cat == catForbidden {
		e := &ForbiddenError{Global: raw}
		if full := module + "." + name; full != raw {
			e.Resolved = full
		}
		return item{}, e
	}
	v.globals = append(v.globals, global{module, name, cat})
	return item{kind: kGlobal, a: len(v.globals) - 1}, nil
}

// callable checks that it may be called by REDUCE, INST or OBJ.
func (v *verifier) callable(it item, op int, name string) error {
	if it.kind != kGlobal {
		if v.scan != nil {
			v.scan.call(op, name, "", catForbidden)
			return nil
		}
		return v.errf(op, "%s of a value that is not an allow-listed global", name)
	}
	g := v.globals[it.a]
	if g.cat != catCall {
		if v.scan != nil {
			v.scan.call(op, name, g.module+"."+g.name, g.cat)
			return nil
		}
		return &ForbiddenError{Global: g.module + "." + g.name, Use: name}
	}
	return nil
}

// reconstructor checks a call of copyreg._reconstructor(cls, base, state):
// unless base is object, it calls base.__new__ and base.__init__, so base is
// a call of its own. torch's protocol 0 and 1 pickles pass object.
// joblibReconstructor reports whether, in a joblib scan, fn(args) is
// copyreg._reconstructor(NumpyArrayWrapper, object, None), as pickle
// protocols 0 and 1 make the wrapper.
func (v *verifier) joblibReconstructor(fn, args item) bool {
	if v.scan == nil || !v.scan.joblib || fn.kind != kGlobal || args.cls <= 0 || args.base <= 0 {
		return false
	}
	g, c, b := v.globals[fn.a], v.globals[args.cls-1], v.globals[args.base-1]
	return g.name == "_reconstructor" && (g.module == "copyreg" || g.module == "copy_reg") &&
		c.module+"."+c.name == joblibWrapper && b.module == "builtins" && b.name == "object"
}

func (v *verifier) reconstructor(fn, args item, op int) error {
	if fn.kind != kGlobal {
		return nil
	}
	if g := v.globals[fn.a]; g.name != "_reconstructor" || g.module != "copyreg" && g.module != "copy_reg" {
		return nil
	}
	switch {
	case args.base > 0:
		b := v.globals[args.base-1]
		if b.module == "builtins" && b.name == "object" {
			return nil
		}
		if v.scan != nil {
			full := b.module + "." + b.name
			sev := SeverityHigh
			if criticalGlobal(b.module, b.name) {
				sev = SeverityCritical
			}
			v.scan.add(Finding{Severity: sev, Offset: int64(op), Op: "REDUCE", Global: full,
				Description: fmt.Sprintf("copyreg._reconstructor with base %s calls its __new__ and __init__: torch.load runs them", full)})
			return nil
		}
		return v.errf(op, "copyreg._reconstructor with base %s.%s, whose __init__ it would call", b.module, b.name)
	case v.scan != nil:
		v.scan.call(op, "REDUCE", "", catForbidden)
		return nil
	}
	return v.errf(op, "copyreg._reconstructor with a base that is not a global")
}

// refuse returns the reader's refusal of something CPython reads, or, when
// scanning, records it as an anomaly (what is refused is never clean) and
// returns nil so that the walk goes on as CPython's would.
func (v *verifier) refuse(op int, anomaly string, format string, args ...any) error {
	if v.scan != nil {
		v.scan.anomaly(op, anomaly, fmt.Sprintf(format, args...))
		return nil
	}
	return v.errf(op, format, args...)
}

// textKey handles a GET or PUT key that is not plain digits: the reader
// refuses it; a scan reads it as CPython does (int(s, 10): white space,
// a sign, underscores and leading zeros allowed) and notes the anomaly.
func (v *verifier) textKey(op int, name string, b []byte) (int, error) {
	if v.scan == nil {
		return 0, v.errf(op, "%s of invalid index %q (a memo key must be plain decimal digits)", name, b)
	}
	t := strings.ReplaceAll(strings.TrimSpace(string(b)), "_", "")
	idx, err := strconv.Atoi(t)
	if err != nil || idx < 0 || idx > 1<<31 || strings.Contains(string(b), "__") {
		return 0, v.errf(op, "%s of invalid index %q", name, b)
	}
	v.scan.anomaly(op, "memo-key-text", fmt.Sprintf("%s key %q is not plain digits: CPython reads it as %d, a naive parser as another slot or not at all", name, b, idx))
	return idx, nil
}

func (v *verifier) hashable(items []item, op int, name string) error {
	if v.scan != nil {
		return nil // CPython hashes bytes; only gopickle cannot
	}
	for _, it := range items {
		if it.kind == kBytes {
			return v.errf(op, "%s with a bytes key", name)
		}
	}
	return nil
}

func (v *verifier) setMemo(idx int, op int) error {
	if err := v.need(1, op, "PUT"); err != nil {
		return err
	}
	if _, ok := v.memo[idx]; !ok && len(v.memo) >= limit.memo {
		return v.errf(op, "memo exceeds %d entries", limit.memo)
	}
	v.memo[idx] = v.stack[len(v.stack)-1]
	return nil
}

func (v *verifier) getMemo(idx int, op int) error {
	it, ok := v.memo[idx]
	if !ok {
		return v.errf(op, "GET of unset memo entry %d", idx)
	}
	return v.push(it, op)
}

func (v *verifier) patch(off int, b ...byte) {
	if !v.patched {
		v.data = append([]byte(nil), v.data...)
		v.patched = true
	}
	copy(v.data[off:], b)
}

func (v *verifier) run() error {
	le := binary.LittleEndian
	for {
		if v.frameEnd > 0 && v.pos == v.frameEnd {
			v.frameEnd = 0
		}
		op := v.pos
		if op >= len(v.data) {
			return v.truncf(op, "no STOP opcode")
		}
		v.ops++
		if v.ops > limit.ops {
			return v.errf(op, "more than %d opcodes", limit.ops)
		}
		code := v.data[op]
		v.work += opCost[code]
		if v.work > limit.work {
			return v.errf(op, "pickle would allocate more than the %d-byte budget", limit.work)
		}
		v.pos++
		var err error
		switch code {
		case '(': // MARK
			if len(v.marks) >= MaxMarks {
				return v.errf(op, "MARKs nest deeper than %d", MaxMarks)
			}
			v.marks = append(v.marks, len(v.stack))
		case '.': // STOP
			if err := v.need(1, op, "STOP"); err != nil {
				return err
			}
			return nil
		case '0': // POP
			if v.segment() == 0 {
				_, err = v.popMark(op, "POP")
			} else {
				v.pop()
			}
		case '1': // POP_MARK
			_, err = v.popMark(op, "POP_MARK")
		case '2': // DUP
			if err = v.need(1, op, "DUP"); err == nil {
				err = v.push(v.stack[len(v.stack)-1], op)
			}
		case 'F', 'I', 'L': // FLOAT, INT, LONG
			var b []byte
			if b, err = v.line(op, MaxDigits); err == nil {
				if len(b) == 0 {
					return v.errf(op, "empty number")
				}
				if !canonicalNumber(code, b) {
					if err = v.refuse(op, "number-text", "%s argument %q is not a plain decimal: CPython's C unpickler reads base prefixes, leading zeros, signs, underscores and text after a NUL its own way", opName(code), b); err != nil {
						return err
					}
				}
				err = v.push(item{}, op)
			}
		case 'J': // BININT
			if _, err = v.take(4, op); err == nil {
				err = v.push(item{}, op)
			}
		case 'K': // BININT1
			if _, err = v.take(1, op); err == nil {
				err = v.push(item{}, op)
			}
		case 'M': // BININT2
			if _, err = v.take(2, op); err == nil {
				err = v.push(item{}, op)
			}
		case 'N', 0x88, 0x89: // NONE, NEWTRUE, NEWFALSE
			err = v.push(item{}, op)
		case 'P': // PERSID
			if !v.persid {
				return v.errf(op, "persistent id in a pickle that has none")
			}
			if _, err = v.line(op, MaxLine); err == nil {
				err = v.push(item{kind: kPersid}, op)
			}
		case 'Q': // BINPERSID
			if !v.persid {
				return v.errf(op, "persistent id in a pickle that has none")
			}
			if err = v.need(1, op, "BINPERSID"); err == nil {
				v.pop()
				err = v.push(item{kind: kPersid}, op)
			}
		case 'R': // REDUCE
			if err = v.need(2, op, "REDUCE"); err == nil {
				args, fn := v.pop(), v.pop()
				if err = v.callable(fn, op, "REDUCE"); err == nil {
					if err = v.reconstructor(fn, args, op); err == nil {
						err = v.push(item{jw: v.joblibReconstructor(fn, args)}, op)
					}
				}
			}
		case 'S': // STRING
			var b []byte
			if b, err = v.line(op, MaxLine); err == nil {
				if len(b) < 2 || b[0] != b[len(b)-1] || (b[0] != '\'' && b[0] != '"') {
					return v.errf(op, "STRING argument is not quoted")
				}
				start := v.pos - 1 - len(b) + 1
				it := item{kind: kStr, a: start, b: len(b) - 2}
				if !plainText(b[1 : len(b)-1]) {
					if err = v.refuse(op, "string-escapes", "STRING argument with escapes or non-ASCII bytes: CPython decodes them, a naive reader does not"); err != nil {
						return err
					}
					d := decodeEscapes(b[1:len(b)-1], false)
					it.dec = &d
				}
				err = v.push(it, op)
			}
		case 'T', 'X', 'B': // BINSTRING, BINUNICODE, BINBYTES
			var b []byte
			if b, err = v.take(4, op); err == nil {
				n := int64(le.Uint32(b))
				if code == 'T' && int32(le.Uint32(b)) < 0 {
					return v.errf(op, "BINSTRING with negative length")
				}
				err = v.counted(n, op, code == 'B')
			}
		case 'U', 'C', 0x8c: // SHORT_BINSTRING, SHORT_BINBYTES, SHORT_BINUNICODE
			var b []byte
			if b, err = v.take(1, op); err == nil {
				err = v.counted(int64(b[0]), op, code == 'C')
			}
		case 0x8d, 0x8e, 0x96: // BINUNICODE8, BINBYTES8, BYTEARRAY8
			var b []byte
			if b, err = v.take(8, op); err == nil {
				n := le.Uint64(b)
				if n > uint64(len(v.data)) {
					return v.truncf(op, "argument of %d bytes, %d left", n, len(v.data)-v.pos)
				}
				err = v.counted(int64(n), op, code != 0x8d)
			}
		case 'V': // UNICODE
			var b []byte
			if b, err = v.line(op, MaxLine); err == nil {
				it := item{kind: kStr, a: v.pos - 1 - len(b), b: len(b)}
				if !plainText(b) {
					if err = v.refuse(op, "string-escapes", "UNICODE argument with escapes or non-ASCII bytes: CPython decodes it as raw-unicode-escape, a naive reader does not"); err != nil {
						return err
					}
					d := decodeEscapes(b, true)
					it.dec = &d
				}
				err = v.push(it, op)
			}
		case 'a': // APPEND
			if err = v.need(2, op, "APPEND"); err == nil {
				v.pop()
			}
		case 'b': // BUILD
			if err = v.need(2, op, "BUILD"); err == nil {
				v.pop()
				if t := v.stack[len(v.stack)-1]; t.kind == kGlobal {
					// BUILD with a (None, slots) state runs setattr on its
					// target: on a class or function itself, that patches
					// it for the whole process.
					g := v.globals[t.a]
					if v.scan == nil {
						return v.errf(op, "BUILD on global %s.%s itself", g.module, g.name)
					}
					v.scan.build(op, g.module, g.name)
				}
				if t := v.stack[len(v.stack)-1]; t.jw && op >= v.scan.joblibFrom {
					if v.frameEnd > 0 && v.frameEnd != v.pos {
						// joblib reads the array from the file, past the
						// frame the unpickler has buffered: the opcodes
						// left in the frame would be read after it.
						return v.errf(op, "joblib array data starts inside a pickle frame")
					}
					return &joblibArray{end: v.pos}
				}
			}
		case 'c', 'i': // GLOBAL, INST
			if code == 'i' && len(v.marks) == 0 {
				// CPython's C unpickler looks for the MARK first.
				return v.errf(op, "INST without MARK")
			}
			var mod, name []byte
			if mod, err = v.line(op, MaxLine); err != nil {
				return err
			}
			if name, err = v.line(op, MaxLine); err != nil {
				return err
			}
			gop := "GLOBAL"
			if code == 'i' {
				gop = "INST"
			}
			g, err := v.addGlobal(string(mod), string(name), op, gop)
			if err != nil {
				return err
			}
			if v.scan == nil && string(mod) == "collections" && string(name) == "OrderedDict" {
				// gopickle resolves this global itself, with a constructor
				// that refuses the list of pairs Python 2 pickles pass it;
				// rename it in place to reach ours.
				v.patch(v.pos-1-len(odAlias), []byte(odAlias)...)
			}
			if code == 'i' {
				if err = v.callable(g, op, "INST"); err != nil {
					return err
				}
				if _, err = v.popMark(op, "INST"); err != nil {
					return err
				}
				g = item{}
			}
			err = v.push(g, op)
		case 0x93: // STACK_GLOBAL
			if err = v.need(2, op, "STACK_GLOBAL"); err != nil {
				return err
			}
			name, mod := v.pop(), v.pop()
			if name.kind != kStr || mod.kind != kStr {
				if v.scan == nil {
					return v.errf(op, "STACK_GLOBAL of names that are not string constants")
				}
				v.scan.global(op, "STACK_GLOBAL", "?", "?", catForbidden)
				v.globals = append(v.globals, global{"?", "?", catForbidden})
				err = v.push(item{kind: kGlobal, a: len(v.globals) - 1}, op)
				break
			}
			g, err := v.addGlobal(v.str(mod), v.str(name), op, "STACK_GLOBAL")
			if err != nil {
				return err
			}
			err = v.push(g, op)
		case 'd', '}': // DICT, EMPTY_DICT
			if code == 'd' {
				var items []item
				if items, err = v.popMark(op, "DICT"); err != nil {
					return err
				}
				if len(items)%2 != 0 {
					return v.errf(op, "DICT of an odd number (%d) of items", len(items))
				}
				for i := 0; i < len(items); i += 2 {
					if err := v.hashable(items[i:i+1], op, "DICT"); err != nil {
						return err
					}
				}
			}
			err = v.push(item{}, op)
		case 'e': // APPENDS
			if _, err = v.popMark(op, "APPENDS"); err == nil {
				err = v.need(1, op, "APPENDS")
			}
		case 0x90: // ADDITEMS
			var items []item
			if items, err = v.popMark(op, "ADDITEMS"); err == nil {
				if err = v.hashable(items, op, "ADDITEMS"); err == nil {
					err = v.need(1, op, "ADDITEMS")
				}
			}
		case 'g': // GET
			var b []byte
			if b, err = v.line(op, MaxDigits); err == nil {
				idx, perr := strconv.Atoi(string(b))
				if perr != nil || idx < 0 || !canonicalIndex(b) {
					if idx, err = v.textKey(op, "GET", b); err != nil {
						return err
					}
				}
				err = v.getMemo(idx, op)
			}
		case 'h': // BINGET
			var b []byte
			if b, err = v.take(1, op); err == nil {
				err = v.getMemo(int(b[0]), op)
			}
		case 'j': // LONG_BINGET
			var b []byte
			if b, err = v.take(4, op); err == nil {
				err = v.getMemo(int(le.Uint32(b)), op)
			}
		case 'p': // PUT
			var b []byte
			if b, err = v.line(op, MaxDigits); err == nil {
				idx, perr := strconv.Atoi(string(b))
				if perr != nil || idx < 0 || idx > 1<<31 || !canonicalIndex(b) {
					if idx, err = v.textKey(op, "PUT", b); err != nil {
						return err
					}
				}
				err = v.setMemo(idx, op)
			}
		case 'q': // BINPUT
			var b []byte
			if b, err = v.take(1, op); err == nil {
				err = v.setMemo(int(b[0]), op)
			}
		case 'r': // LONG_BINPUT
			var b []byte
			if b, err = v.take(4, op); err == nil {
				err = v.setMemo(int(le.Uint32(b)), op)
			}
		case 0x94: // MEMOIZE
			err = v.setMemo(len(v.memo), op)
		case 'l', 't', 0x91: // LIST, TUPLE, FROZENSET
			var items []item
			if items, err = v.popMark(op, "LIST/TUPLE"); err == nil {
				if code == 0x91 {
					err = v.hashable(items, op, "FROZENSET")
				}
				if err == nil {
					it := item{}
					if code == 't' && len(items) == 3 {
						it = triple(items)
					}
					err = v.push(it, op)
				}
			}
		case ']', ')', 0x8f: // EMPTY_LIST, EMPTY_TUPLE, EMPTY_SET
			err = v.push(item{}, op)
		case 'o': // OBJ
			var items []item
			if items, err = v.popMark(op, "OBJ"); err != nil {
				return err
			}
			if len(items) == 0 {
				return v.errf(op, "OBJ without a class")
			}
			if err = v.callable(items[0], op, "OBJ"); err == nil {
				err = v.push(item{}, op)
			}
		case 's': // SETITEM
			if err = v.need(3, op, "SETITEM"); err == nil {
				if err = v.hashable(v.stack[len(v.stack)-2:len(v.stack)-1], op, "SETITEM"); err == nil {
					v.pop()
					v.pop()
				}
			}
		case 'u': // SETITEMS
			var items []item
			if items, err = v.popMark(op, "SETITEMS"); err != nil {
				return err
			}
			if len(items)%2 != 0 {
				return v.errf(op, "SETITEMS of an odd number (%d) of items", len(items))
			}
			for i := 0; i < len(items); i += 2 {
				if err := v.hashable(items[i:i+1], op, "SETITEMS"); err != nil {
					return err
				}
			}
			err = v.need(1, op, "SETITEMS")
		case 'G': // BINFLOAT
			if _, err = v.take(8, op); err == nil {
				err = v.push(item{}, op)
			}
		case 0x80: // PROTO
			var b []byte
			if b, err = v.take(1, op); err == nil {
				if b[0] > 5 {
					return v.errf(op, "unsupported pickle protocol %d", b[0])
				}
				v.proto = int(b[0])
			}
		case 0x81: // NEWOBJ
			if err = v.need(2, op, "NEWOBJ"); err == nil {
				v.pop()
				err = v.newable(v.pop(), op, "NEWOBJ")
			}
		case 0x92: // NEWOBJ_EX
			if err = v.need(3, op, "NEWOBJ_EX"); err == nil {
				v.pop()
				v.pop()
				err = v.newable(v.pop(), op, "NEWOBJ_EX")
			}
		case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
			k := int(code - 0x84)
			if err = v.need(k, op, "TUPLE"); err == nil {
				it := item{}
				if k == 3 {
					it = triple(v.stack[len(v.stack)-3:])
				}
				v.stack = v.stack[:len(v.stack)-k]
				err = v.push(it, op)
			}
		case 0x8a: // LONG1
			var b []byte
			if b, err = v.take(1, op); err == nil {
				if b[0] == 0 {
					v.patch(op, 'K', 0)
				} else if _, err = v.take(int(b[0]), op); err != nil {
					return err
				}
				err = v.push(item{}, op)
			}
		case 0x8b: // LONG4
			var b []byte
			if b, err = v.take(4, op); err == nil {
				n := int32(le.Uint32(b))
				switch {
				case n < 0:
					return v.errf(op, "LONG4 with negative length")
				case n > MaxDigits:
					return v.errf(op, "LONG4 of %d bytes exceeds limit %d", n, MaxDigits)
				case n == 0:
					v.patch(op, 'J', 0, 0, 0, 0)
				default:
					if _, err = v.take(int(n), op); err != nil {
						return err
					}
				}
				err = v.push(item{}, op)
			}
		case 0x95: // FRAME
			var b []byte
			if v.frameEnd > 0 {
				if v.scan == nil {
					return v.errf(op, "FRAME inside an unfinished frame")
				}
				v.scan.anomaly(op, "frame-overlap", "a FRAME starts inside an unfinished frame: CPython's C unpickler reads on, Python's pickle refuses it")
				v.frameEnd = 0
			}
			if b, err = v.take(8, op); err == nil {
				n := le.Uint64(b)
				if n > uint64(len(v.data)-v.pos) {
					return v.truncf(op, "FRAME of %d bytes, %d left", n, len(v.data)-v.pos)
				}
				if n > 0 {
					v.frameEnd = v.pos + int(n)
				}
			}
		case 0x98: // READONLY_BUFFER
			err = v.need(1, op, "READONLY_BUFFER")
		case 0x82, 0x83, 0x84:
			return v.errf(op, "extension registry opcode 0x%02x is not supported", code)
		case 0x97:
			return v.errf(op, "out-of-band buffer opcode NEXT_BUFFER is not supported")
		default:
			return v.errf(op, "invalid opcode 0x%02x", code)
		}
		if err != nil {
			return err
		}
	}
}

// counted checks a length-prefixed string or bytes argument of n bytes and
// pushes its placeholder.
func (v *verifier) counted(n int64, op int, bytes bool) error {
	start := v.pos
	v.work += 2 * n
	if n > int64(len(v.data)) {
		return v.truncf(op, "argument of %d bytes, %d left", n, len(v.data)-v.pos)
	}
	if _, err := v.take(int(n), op); err != nil {
		return err
	}
	if bytes {
		return v.push(item{kind: kBytes}, op)
	}
	if !utf8.Valid(v.data[start : start+int(n)]) {
		// CPython decodes it (UTF-8 for BINUNICODE, torch.load's encoding
		// for BINSTRING) and fails; gopickle would keep the bytes.
		return v.errf(op, "string argument is not valid UTF-8, which CPython fails to decode")
	}
	return v.push(item{kind: kStr, a: start, b: int(n)}, op)
}

func (v *verifier) newable(it item, op int, name string) error {
	switch it.kind {
	case kPersid:
	case kGlobal:
		g := v.globals[it.a]
		if v.scan != nil && v.scan.joblib && g.module+"."+g.name == joblibWrapper {
			return v.push(item{jw: true}, op)
		}
		if g.cat != catClass {
			if v.scan == nil {
				return &ForbiddenError{Global: g.module + "." + g.name, Use: name}
			}
			v.scan.call(op, name, g.module+"."+g.name, g.cat)
		}
	default:
		if v.scan == nil {
			return v.errf(op, "%s of a value that is not a class", name)
		}
		v.scan.call(op, name, "", catForbidden)
	}
	return v.push(item{}, op)
}
