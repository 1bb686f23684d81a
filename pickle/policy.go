package pickle

import (
	"fmt"
	"strings"
)

// category is what a pickle may do with a global.
type category uint8

const (
	// catForbidden globals are refused in any use.
	catForbidden category = iota
	// catCall globals may be called by REDUCE, INST or OBJ: each has a Go
	// implementation that builds data and runs nothing.
	catCall
	// catClass globals may be instantiated by NEWOBJ (as an inert Object
	// that records its class name and state) or used as values.
	catClass
	// catValue globals may only be used as values (storage types, dtypes).
	catValue
)

// ForbiddenError reports a global that the allow-list refuses.
type ForbiddenError struct {
	Global string // "module.name", as the pickle names it
	// Resolved is the global CPython looks up instead, when it renames a
	// Python 2 name ("commands.getoutput" is "subprocess.getoutput").
	Resolved string
	Use      string // the opcode that used it, when it is refused for that use only
}

// Error returns "pickle: forbidden global \"module.name\"", with the use
// that was refused when the global is allowed for other uses.
func (e *ForbiddenError) Error() string {
	if e.Resolved != "" {
		return fmt.Sprintf("pickle: forbidden global %q (loaded as %s)", e.Global, e.Resolved)
	}
	if e.Use != "" {
		return fmt.Sprintf("pickle: forbidden global %q (%s of a global that is not allow-listed for it)", e.Global, e.Use)
	}
	return fmt.Sprintf("pickle: forbidden global %q", e.Global)
}

// callables are the globals a pickle may call. They are the rebuild
// functions of torch.load(weights_only=True), the containers torch.save
// writes, TorchScript's list builders, the reconstructor of protocol 0
// and 1 object pickles, collections.Counter (MultiStepLR keeps its
// milestones in one), and functools.partial (torchvision models keep
// partial(nn.LayerNorm, eps=...) attributes), rebuilt inertly.
var callables = map[string]bool{
	"torch._utils._rebuild_tensor":               true,
	"torch._utils._rebuild_tensor_v2":            true,
	"torch._utils._rebuild_parameter":            true,
	"torch._utils._rebuild_parameter_with_state": true,
	"torch._tensor._rebuild_from_type_v2":        true,
	"torch.nn.parameter.Parameter":               true,
	"torch.Size":                                 true,
	"torch.device":                               true,
	"collections.OrderedDict":                    true,
	"collections.Counter":                        true,
	"torch.jit._pickle.build_intlist":            true,
	"torch.jit._pickle.build_floatlist":          true,
	"torch.jit._pickle.build_doublelist":         true,
	"torch.jit._pickle.build_boollist":           true,
	"torch.jit._pickle.build_tensorlist":         true,
	"torch.jit._pickle.restore_type_tag":         true,
	"copyreg._reconstructor":                     true,
	"copy_reg._reconstructor":                    true,
	"builtins.set":                               true,
	"builtins.frozenset":                         true,
	"__builtin__.set":                            true,
	"__builtin__.frozenset":                      true,
	"_codecs.encode":                             true,
	"builtins.bytes":                             true,
	"__builtin__.bytes":                          true,
	"builtins.bytearray":                         true,
	"__builtin__.bytearray":                      true,
	"functools.partial":                          true,
	"numpy.dtype":                                true,
	"numpy.core.multiarray.scalar":               true,
	"numpy._core.multiarray.scalar":              true,
	"numpy.core.multiarray._reconstruct":         true,
	"numpy._core.multiarray._reconstruct":        true,
	"numpy.core.numeric._frombuffer":             true,
	"numpy._core.numeric._frombuffer":            true,
}

// safeBuiltins are the builtins a pickle may name as values.
var safeBuiltins = map[string]bool{
	"object": true, "set": true, "frozenset": true, "list": true, "dict": true,
	"tuple": true, "int": true, "float": true, "str": true, "bytes": true,
	"bool": true, "complex": true, "bytearray": true, "slice": true, "long": true,
	"unicode": true,
}

// forbiddenModules are refused in any use, with their submodules. They run
// commands, evaluate code, import modules, reach attributes by name or
// touch files, sockets and processes.
var forbiddenModules = []string{
	"os", "posix", "nt", "posixpath", "ntpath", "subprocess", "sys", "runpy", "importlib",
	"imp", "shutil", "socket", "pty", "commands", "popen2", "webbrowser", "ctypes",
	"multiprocessing", "threading", "_thread", "thread", "signal", "code", "codeop",
	"pickle", "_pickle", "cPickle", "pickletools", "marshal", "shelve", "dill", "types",
	"operator", "itertools", "inspect", "gc", "pdb", "bdb", "timeit", "trace",
	"profile", "cProfile", "io", "_io", "tempfile", "pathlib", "glob", "urllib",
	"urllib2", "http", "httplib", "ftplib", "smtplib", "telnetlib", "requests", "asyncio",
	"select", "selectors", "platform", "sysconfig", "site", "zipimport", "pkgutil",
	"builtins", "__builtin__", "__builtins__", "exec", "eval", "compile", "tarfile",
	"zipfile", "fcntl", "resource", "mmap", "_posixsubprocess", "spawn", "distutils",
	"setuptools", "pip", "venv", "ensurepip", "numpy.testing", "torch.hub",
	"torch.serialization", "torch.jit._script", "torch._C", "torch.ops", "torch.utils.cpp_extension",
	"torch.package", "torch.multiprocessing", "torch.distributed",
	// torch's compilers, code generators, op registries and loaders (
	// torch.jit.load, torch.export.load): they compile or run code. The
	// TorchScript list builders of torch.jit._pickle are callables, found
	// first.
	"torch._dynamo", "torch._inductor", "torch.fx", "torch.compiler", "torch.library",
	"torch._ops", "torch.jit", "torch.export", "torch._jit_internal",
	// numpy's build tools run compilers; its file readers load pickles.
	"numpy.f2py", "numpy.distutils", "numpy.lib.npyio", "numpy.lib.format",
}

// forbiddenNumpy are names of module numpy that read or write files
// (numpy.load unpickles object arrays). The reader already refuses to call
// them (they are not callables) and keeps them nameable as values; a scan
// reports them CRITICAL.
var forbiddenNumpy = map[string]bool{
	"load": true, "save": true, "savez": true, "savez_compressed": true, "loadtxt": true,
	"savetxt": true, "genfromtxt": true, "fromfile": true, "memmap": true, "fromregex": true,
}

// forbiddenTorch are names of module torch that load files, compile or run
// code (torch.load, torch.compile, torch.jit as an attribute chain).
var forbiddenTorch = map[string]bool{
	"load": true, "compile": true, "jit": true, "hub": true, "ops": true, "_C": true,
	"package": true, "serialization": true, "classes": true, "library": true,
	"_dynamo": true, "_inductor": true, "fx": true, "_ops": true, "_load_global_deps": true,
	"utils": true, "distributed": true, "multiprocessing": true,
}

// storageDTypes maps torch's storage classes to element types.
var storageDTypes = map[string]string{
	"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
	"BFloat16Storage": "bfloat16", "CharStorage": "int8", "ShortStorage": "int16",
	"IntStorage": "int32", "LongStorage": "int64", "ByteStorage": "uint8",
	"BoolStorage": "bool", "UntypedStorage": "uint8",
}

// torchDTypes are the dtype globals (torch.float32 and friends).
var torchDTypes = map[string]string{
	"float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
	"float16": "float16", "half": "float16", "bfloat16": "bfloat16", "int8": "int8",
	"int16": "int16", "short": "int16", "int32": "int32", "int": "int32", "int64": "int64",
	"long": "int64", "uint8": "uint8", "bool": "bool", "complex64": "complex64",
	"complex128": "complex128", "complex32": "complex32",
}

// resolve returns the global CPython's unpickler looks up for GLOBAL (or
// STACK_GLOBAL) module and name in a pickle of protocol proto: with
// fix_imports (torch.load's default), protocols 0 to 2 map Python 2 names
// through _compat_pickle's tables (see compat_table.go).
func resolve(module, name string, proto int) (string, string) {
	if proto >= 3 {
		return module, name
	}
	if to, ok := compatNames[module+"\n"+name]; ok {
		m, n, _ := strings.Cut(to, "\n")
		return m, n
	}
	if m, ok := compatImports[module]; ok {
		return m, name
	}
	return module, name
}

// classify returns what a pickle may do with the global module.name, as
// resolve returned it.
//
// A dotted name is refused unless allow-listed whole: from protocol 4
// CPython follows it as an attribute chain (torch, "serialization.os.system"
// reaches os.system through torch's own imports), below 4 it fails to load.
func classify(module, name string) category {
	full := module + "." + name
	if callables[full] {
		return catCall
	}
	if strings.Contains(name, ".") {
		return catForbidden
	}
	if module == "torch" && forbiddenTorch[name] {
		return catForbidden
	}
	if module == "builtins" || module == "__builtin__" {
		if safeBuiltins[name] {
			return catClass
		}
		return catForbidden
	}
	if name == "" || strings.ContainsAny(module+name, "\n\x00") {
		return catForbidden
	}
	for _, part := range strings.Split(name, ".") {
		// Dunder attributes (__import__, __getattribute__, __reduce__, ...)
		// are the usual way to reach code through an innocent module.
		if part == "" || strings.HasPrefix(part, "__") && strings.HasSuffix(part, "__") {
			return catForbidden
		}
	}
	for _, m := range forbiddenModules {
		if module == m || strings.HasPrefix(module, m+".") {
			return catForbidden
		}
	}
	if module == "torch" || module == "torch.storage" {
		if _, ok := storageDTypes[name]; ok {
			return catValue
		}
		if _, ok := torchDTypes[name]; ok {
			return catValue
		}
	}
	return catClass
}
