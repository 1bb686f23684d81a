package pickle

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Where CPython's unpickler and a naive parser disagree, the reader reads
// exactly what CPython reads or refuses. These are the textual arguments of
// protocols 0 and 1, which torch has never written.
//
//   - INT: CPython's C unpickler reads strtol(s, 0) and falls back to
//     int(s, 0): "010" is 8, "0x10" is 16, "1\x00junk" is 1, " 5", "+5" and
//     "1_0" are numbers, "-0" and "00" are False. LONG and FLOAT differ the
//     same way (int(s, 0), float parsing that stops at a NUL). Only plain
//     decimals are accepted: an optional '-' and digits without a leading
//     zero, "00" and "01" (INT's False and True), a trailing 'L' for LONG;
//     FLOAT as Python's repr writes it.
//   - GET and PUT keys: CPython reads int(s, 10), which allows "+1", " 1",
//     "1_0" and leading zeros, so "01" and "1" name the same memo slot:
//     only digits without a leading zero are accepted.
//   - STRING arguments are escape-decoded by CPython and UNICODE ones read
//     as raw-unicode-escape (bytes over 0x7f as Latin-1): arguments with a
//     backslash or a non-ASCII byte are refused (scanning decodes them).

// canonicalNumber reports whether b, the argument of INT, LONG or FLOAT
// (code 'I', 'L', 'F'), is written the one way every reader agrees on.
func canonicalNumber(code byte, b []byte) bool {
	s := string(b)
	switch code {
	case 'I':
		if s == "00" || s == "01" {
			return true
		}
		return s != "-0" && plainDecimal(s) // CPython reads "-0" as False
	case 'L':
		return plainDecimal(strings.TrimSuffix(s, "L"))
	}
	switch s {
	case "inf", "-inf", "nan":
		return true
	}
	// [-]digits[.digits][e[+-]digits], as repr(float) writes.
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	d := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i, d = i+1, d+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, d = i+1, d+1
		}
	}
	if d == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		e := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, e = i+1, e+1
		}
		if e == 0 {
			return false
		}
	}
	return i == len(s)
}

// plainDecimal reports whether s is "0" or [-][1-9][0-9]*.
func plainDecimal(s string) bool {
	s = strings.TrimPrefix(s, "-")
	return canonicalIndex([]byte(s))
}

// canonicalIndex reports whether b is "0" or [1-9][0-9]*.
func canonicalIndex(b []byte) bool {
	if len(b) == 0 || len(b) > 1 && b[0] == '0' {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// plainText reports whether b is printable ASCII without a backslash.
func plainText(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// decodeEscapes decodes a STRING argument as CPython's
// PyBytes_DecodeEscape does, or, with raw, a UNICODE argument as
// raw-unicode-escape does (only \uXXXX and \UXXXXXXXX; bytes as Latin-1).
// Malformed escapes are kept as written: a scan only needs the names.
func decodeEscapes(b []byte, raw bool) string {
	var sb strings.Builder
	hex := func(s []byte) (rune, bool) {
		v, err := strconv.ParseUint(string(s), 16, 32)
		return rune(v), err == nil
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' || i+1 >= len(b) {
			if raw {
				sb.WriteRune(rune(c))
			} else {
				sb.WriteByte(c)
			}
			continue
		}
		e := b[i+1]
		if raw {
			n := map[byte]int{'u': 4, 'U': 8}[e]
			if n > 0 && i+2+n <= len(b) {
				if r, ok := hex(b[i+2 : i+2+n]); ok && utf8.ValidRune(r) {
					sb.WriteRune(r)
					i += 1 + n
					continue
				}
			}
			sb.WriteRune('\\')
			continue
		}
		switch e {
		case '\\', '\'', '"':
			sb.WriteByte(e)
		case 'n':
			sb.WriteByte('\n')
		case 't':
			sb.WriteByte('\t')
		case 'r':
			sb.WriteByte('\r')
		case 'a':
			sb.WriteByte('\a')
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'v':
			sb.WriteByte('\v')
		case '\n':
		case 'x':
			if i+4 <= len(b) {
				if r, ok := hex(b[i+2 : i+4]); ok {
					sb.WriteByte(byte(r))
					i += 3
					continue
				}
			}
			sb.WriteString("\\x")
		default:
			if e >= '0' && e <= '7' {
				v, j := 0, i+1
				for j < len(b) && j < i+4 && b[j] >= '0' && b[j] <= '7' {
					v = v*8 + int(b[j]-'0')
					j++
				}
				sb.WriteByte(byte(v))
				i = j - 1
				continue
			}
			sb.WriteByte('\\')
			sb.WriteByte(e)
		}
		i++
	}
	return sb.String()
}

// opNames are the names pickletools gives the opcodes that findings and
// refusals name.
var opNames = map[byte]string{
	'I': "INT", 'L': "LONG", 'F': "FLOAT", 'c': "GLOBAL", 'i': "INST", 0x93: "STACK_GLOBAL",
	'R': "REDUCE", 'b': "BUILD", 'o': "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX",
	'g': "GET", 'p': "PUT", 'S': "STRING", 'V': "UNICODE", 0x95: "FRAME",
}

func opName(code byte) string {
	if n, ok := opNames[code]; ok {
		return n
	}
	return "0x" + strconv.FormatUint(uint64(code), 16)
}

// pyModuleName reports whether s is a dotted path of Python identifiers
// (bytes over 0x7f count as letters: Python 3 allows Unicode ones).
func pyModuleName(s string) bool {
	for _, part := range strings.Split(s, ".") {
		if part == "" || part[0] >= '0' && part[0] <= '9' {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80) {
				return false
			}
		}
	}
	return true
}

// pickleStart reports whether c is an opcode a pickle may start with (any
// the validating pass knows that pushes or marks).
func pickleStart(c byte) bool {
	return c >= 0x80 && c <= 0x98 || strings.IndexByte("(FGIJKLMNSTUVX]})cgijl", c) >= 0
}
