package nn

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Repr returns m's module tree exactly as torch prints it (Module.__repr__):
// the type name, its extra repr, and each child as "(name): ..." indented by
// two spaces. Built-in layers' String methods call it; user modules can too:
//
//	func (n *Net) String() string { return nn.Repr(n) }
//
// The printed name is the Go type's name, or TypeName() when the module
// implements [TypeNamer]. A type that embeds a built-in layer (say
// Conv2dNormActivation embedding Sequential) inherits that layer's String
// method, which prints the embedded name at the root; give the outer type
// its own String (nested printing always uses the registered outer value).
func Repr(m Module) string {
	var extra []string
	if e, ok := m.(ExtraRepr); ok {
		if s := e.ExtraRepr(); s != "" {
			extra = strings.Split(s, "\n")
		}
	}
	var child []string
	for _, c := range m.base().NamedChildren() {
		child = append(child, "("+c.Name+"): "+addIndent(Repr(c.Module), 2))
	}
	lines := append(extra, child...)
	s := typeName(m) + "("
	if len(lines) > 0 {
		if len(extra) == 1 && len(child) == 0 {
			s += extra[0]
		} else {
			s += "\n  " + strings.Join(lines, "\n  ") + "\n"
		}
	}
	return s + ")"
}

func typeName(m Module) string {
	if n, ok := m.(TypeNamer); ok {
		return n.TypeName()
	}
	t := reflect.TypeOf(m)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

func addIndent(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) == 1 {
		return s
	}
	pad := strings.Repeat(" ", n)
	for i := 1; i < len(lines); i++ {
		lines[i] = pad + lines[i]
	}
	return strings.Join(lines, "\n")
}

// pyFloat formats v as Python's repr(float) does.
func pyFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	case math.IsNaN(v):
		return "nan"
	}
	e := strconv.FormatFloat(v, 'e', -1, 64) // d.ddde±XX
	mant, expS, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expS)
	if exp < -4 || exp >= 16 {
		sign := "+"
		if exp < 0 {
			sign = "-"
			exp = -exp
		}
		return fmt.Sprintf("%se%s%02d", mant, sign, exp)
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

func pyBool(v bool) string {
	if v {
		return "True"
	}
	return "False"
}

// pyTuple formats ints as a Python tuple: (3,) or (3, 3).
func pyTuple(v ...int) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.Itoa(x)
	}
	if len(v) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// pyIntOrTuple formats a size argument as the user gave it: one int as an int,
// several as a tuple.
func pyIntOrTuple(v []int) string {
	if len(v) == 1 {
		return strconv.Itoa(v[0])
	}
	return pyTuple(v...)
}
