package pickle

import (
	"fmt"
	"strings"
)

// Severity ranks a finding of Scan. The zero value is below LOW: no finding.
type Severity int

// Severities, as `ckpt scan` reports them.
const (
	// SeverityLow: TorchScript code (run by torch.jit.load), classes of a
	// whole-model pickle outside torch (imported by torch.load, which may
	// run their code while rebuilding the object).
	SeverityLow Severity = iota + 1
	// SeverityMedium: a container or encoding anomaly that lets two readers
	// see different contents; the reader refuses it.
	SeverityMedium
	// SeverityHigh: a global outside the weights-only allow-list, or an
	// object construction (REDUCE, INST, OBJ, NEWOBJ) the allow-list refuses.
	SeverityHigh
	// SeverityCritical: a global that runs code or reaches the operating
	// system (os, subprocess, eval, exec, getattr, runpy, ...).
	SeverityCritical
)

// String returns "LOW", "MEDIUM", "HIGH" or "CRITICAL".
func (s Severity) String() string {
	switch s {
	case SeverityLow:
		return "LOW"
	case SeverityMedium:
		return "MEDIUM"
	case SeverityHigh:
		return "HIGH"
	case SeverityCritical:
		return "CRITICAL"
	}
	return "NONE"
}

// ParseSeverity parses a severity name, in any case.
func ParseSeverity(s string) (Severity, error) {
	for v := SeverityLow; v <= SeverityCritical; v++ {
		if strings.EqualFold(s, v.String()) {
			return v, nil
		}
	}
	return 0, fmt.Errorf("pickle: unknown severity %q (want LOW, MEDIUM, HIGH or CRITICAL)", s)
}

// A Finding is something Scan saw that torch.load (or another reader of the
// file) would act on.
type Finding struct {
	Severity Severity
	// Entry is where in the file the finding is: a zip member
	// ("archive/data.pkl"), a legacy pickle ("pickle 4 of 5 (the object)"),
	// a tar member ("tar member pickle"); empty for the file as a whole.
	Entry string
	// Offset is the byte offset in the file of the opcode or record at
	// fault; for a compressed zip member, the offset inside the member.
	Offset int64
	// Op is the pickle opcode (GLOBAL, STACK_GLOBAL, REDUCE, ...), empty
	// for a container anomaly.
	Op string
	// Global is the global as CPython resolves it ("posix.system"), or
	// the anomaly's name ("zip-case-duplicate") when Anomaly is set.
	Global  string
	Anomaly bool
	// Description is one sentence saying why it matters.
	Description string
}

// scanLog collects the findings of one pickle's validating pass in scan
// mode. Offsets are relative to the pickle.
type scanLog struct {
	findings []Finding
	noted    map[string]bool // anomalies already recorded, by name
	dropped  int             // findings past MaxFindings
	worst    Severity        // of the dropped findings
	// joblib turns on joblib.load's reading (see joblib.go): the walk
	// stops after a BUILD on a NumpyArrayWrapper at or after joblibFrom.
	joblib     bool
	joblibFrom int
}

// MaxFindings bounds the findings Scan lists for one pickle and, separately,
// for one file; the rest are counted in a last finding that has the
// severity of the worst of them.
const MaxFindings = 1000

func (l *scanLog) add(f Finding) {
	if len(l.findings) >= MaxFindings {
		l.dropped++
		l.worst = max(l.worst, f.Severity)
		return
	}
	l.findings = append(l.findings, f)
}

// result returns the findings, with the count of those not listed.
func (l *scanLog) result(end int) []Finding {
	if l.dropped == 0 {
		return l.findings
	}
	return append(l.findings, Finding{Severity: l.worst, Offset: int64(end), Global: "more-findings", Anomaly: true,
		Description: fmt.Sprintf("%d more findings of this pickle are not listed (at most %d are)", l.dropped, MaxFindings)})
}

func (l *scanLog) anomaly(op int, name, desc string) {
	if l.noted == nil {
		l.noted = map[string]bool{}
	}
	if l.noted[name] {
		return
	}
	l.noted[name] = true
	l.add(Finding{Severity: SeverityMedium, Offset: int64(op), Global: name, Anomaly: true, Description: desc})
}

// global records a global reference that is not plainly allowed.
func (l *scanLog) global(op int, opName, module, name string, cat category) {
	full := module + "." + name
	switch {
	case cat == catCall || cat == catValue:
		return
	case cat == catClass && criticalGlobal(module, name):
		l.add(Finding{Severity: SeverityCritical, Offset: int64(op), Op: opName, Global: full,
			Description: fmt.Sprintf("global %s reads files or runs code, and torch.load (weights_only=False) imports it", full)})
		return
	case cat == catClass:
		if !userClass(module) || l.joblib && full == joblibWrapper {
			return
		}
		l.add(Finding{Severity: SeverityLow, Offset: int64(op), Op: opName, Global: full,
			Description: fmt.Sprintf("names class %s outside torch: torch.load imports module %s and may run the class's code while rebuilding the object", full, module)})
		return
	}
	if module == "?" {
		l.add(Finding{Severity: SeverityHigh, Offset: int64(op), Op: opName, Global: "?",
			Description: "STACK_GLOBAL of names computed by the pickle, not string constants: torch.load imports whatever they turn out to be"})
		return
	}
	if criticalGlobal(module, name) {
		l.add(Finding{Severity: SeverityCritical, Offset: int64(op), Op: opName, Global: full,
			Description: fmt.Sprintf("global %s runs code or reaches the operating system, and torch.load (weights_only=False) imports it", full)})
		return
	}
	l.add(Finding{Severity: SeverityHigh, Offset: int64(op), Op: opName, Global: full,
		Description: fmt.Sprintf("global %s is outside the weights-only allow-list: torch.load imports it", full)})
}

// call records a REDUCE, INST, OBJ, NEWOBJ or NEWOBJ_EX that the allow-list
// refuses; global is empty when the callee is not a global.
func (l *scanLog) call(op int, opName, global string, cat category) {
	sev := SeverityHigh
	desc := fmt.Sprintf("%s calls %s, which is not allow-listed for it: torch.load runs it", opName, global)
	switch {
	case global == "":
		desc = fmt.Sprintf("%s calls a value the pickle computed (the result of an earlier call or lookup): torch.load runs it", opName)
	default:
		m, n, _ := strings.Cut(global, ".")
		if i := strings.LastIndexByte(global, '.'); i > 0 {
			m, n = global[:i], global[i+1:]
		}
		if criticalGlobal(m, n) {
			sev = SeverityCritical
			desc = fmt.Sprintf("%s calls %s: torch.load runs it, which runs code or reaches the operating system", opName, global)
		}
	}
	l.add(Finding{Severity: sev, Offset: int64(op), Op: opName, Global: global, Description: desc})
}

// build records a BUILD whose target is a global itself (a class or a
// function, not an instance): its state's attributes are set on it.
func (l *scanLog) build(op int, module, name string) {
	full := module + "." + name
	sev := SeverityHigh
	if criticalGlobal(module, name) {
		sev = SeverityCritical
	}
	l.add(Finding{Severity: sev, Offset: int64(op), Op: "BUILD", Global: full,
		Description: fmt.Sprintf("BUILD sets attributes on %s itself, not on an instance: torch.load patches it for the whole process", full)})
}

// userClass reports whether a class of module is outside torch and the
// standard containers: a user's class in a whole-model pickle.
func userClass(module string) bool {
	root, _, _ := strings.Cut(module, ".")
	switch root {
	case "torch", "__torch__", "builtins", "__builtin__", "collections", "numpy", "copyreg", "copy_reg", "_codecs", "functools":
		return false
	}
	return true
}

// criticalBuiltins are the builtins that evaluate code, reach attributes by
// name, import modules or open files.
var criticalBuiltins = map[string]bool{
	"eval": true, "exec": true, "execfile": true, "compile": true, "getattr": true,
	"setattr": true, "delattr": true, "__import__": true, "open": true, "file": true,
	"input": true, "raw_input": true, "breakpoint": true, "globals": true, "locals": true,
	"vars": true, "help": true, "exit": true, "quit": true, "reload": true, "apply": true,
	"__loader__": true, "__build_class__": true,
}

// criticalGlobal reports whether module.name (as CPython resolves it) runs
// code or reaches the operating system.
func criticalGlobal(module, name string) bool {
	parts := strings.Split(name, ".")
	for _, p := range parts {
		if strings.HasPrefix(p, "__") && strings.HasSuffix(p, "__") {
			return true
		}
	}
	if module == "builtins" || module == "__builtin__" || module == "__builtins__" {
		return criticalBuiltins[parts[0]]
	}
	for _, m := range forbiddenModules {
		if module == m || strings.HasPrefix(module, m+".") {
			return true
		}
	}
	if module == "torch" && forbiddenTorch[parts[0]] || module == "numpy" && forbiddenNumpy[parts[0]] {
		return true
	}
	if len(parts) > 1 {
		// An attribute chain: through any module it reaches, it reaches
		// what that module imports.
		for _, p := range parts[:len(parts)-1] {
			for _, m := range forbiddenModules {
				if p == m {
					return true
				}
			}
		}
		if criticalBuiltins[parts[len(parts)-1]] {
			return true
		}
	}
	return false
}

// scanPickle walks the pickle at the start of data as the validating pass
// does, without stopping at what torch.load would act on: it returns the
// findings (offsets relative to data), the pickle's length through STOP,
// and the error that ended the walk early, if any (the findings before it
// stand). persid says whether persistent ids are expected.
func scanPickle(data []byte, persid bool) ([]Finding, int, error) {
	v := &verifier{data: data, persid: persid, memo: make(map[int]item), scan: &scanLog{}}
	err := v.run()
	return v.scan.result(v.pos), v.pos, err
}
