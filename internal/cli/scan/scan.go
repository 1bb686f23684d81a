package scan

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/formats/npy"
	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/formats/safetensors"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/localpath"
	"github.com/ckptkit/ckpt/pickle"
)

// Options are the inputs of `ckpt scan`.
type Options struct {
	IO *cmdutil.IOStreams
	// Paths are the files and directories to scan.
	Paths []string
	// JSON prints one JSON object; SARIF prints a SARIF 2.1.0 log.
	JSON, SARIF bool
	// FailOn is the lowest severity that makes the exit status 1.
	FailOn string
}

// NewCmdScan returns the scan command. runF, when not nil, is called with
// the parsed options instead of scanRun (tests of flag parsing).
func NewCmdScan(ios *cmdutil.IOStreams, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: ios}
	cmd := &cobra.Command{
		Use:   "scan PATH...",
		Short: "Tell whether model files are dangerous, as torch.load would see them",
		Long: `Scan model files for what loading them would do, without running anything.

Each file is read the way torch.load reads it, whatever it is called (.pt,
.pth, .bin, .ckpt, .pkl, .joblib, .npy/.npz, no extension): a zip archive
(every .pkl member), a legacy file (all five pickles), a tar file (every
member), a TorchScript archive (its pickles and code), a bare pickle.
Every pickle is walked to its end, statically: every global, every call and
object construction is reported, not only the first, and a pickle that
breaks after a dangerous global is still reported dangerous. safetensors,
ONNX and .npy files are also validated by their own readers; joblib.dump
files (plain or compressed) as joblib.load reads them, stepping over each
array's bytes, with the companion array files of joblib 0.9 and before;
an ONNX model whose external data, or a joblib pickle whose companion,
leaves its directory is HIGH. Directories are scanned recursively; a sharded checkpoint's
*.index.json brings in its shards.

Severities:
  CRITICAL  a global that runs code or reaches the OS (os, subprocess,
            eval, exec, getattr, __import__, runpy, socket, ctypes, ...)
  HIGH      any other global outside the weights-only allow-list, or a
            call or object construction the allow-list refuses
  MEDIUM    a container or encoding anomaly that lets two readers see
            different contents (zip names differing in case, overlapping
            members, several end records, integers CPython parses its own
            way, frames opcodes straddle, a pickle that is also a zip, ...)
  LOW       TorchScript code (run by torch.jit.load); classes outside torch
            in a whole-model pickle

Exit status: 0 nothing at or above --fail-on and every file read to the end,
1 a finding at or above --fail-on, 2 a file could not be scanned (and no
finding reached --fail-on).`,
		Example: `  # one file, a directory, a sharded checkpoint
  ckpt scan pytorch_model.bin
  ckpt scan ~/Downloads/models/
  ckpt scan model.safetensors.index.json

  # for scripts and code-scanning dashboards
  ckpt scan --json model.pt | jq '.files[].findings[] | select(.severity == "CRITICAL")'
  ckpt scan --sarif models/ > scan.sarif

  # only fail on code execution
  ckpt scan --fail-on CRITICAL checkpoint.ckpt`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			if runF != nil {
				return runF(opts)
			}
			return scanRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON object: summary and files with their findings and errors")
	cmd.Flags().BoolVar(&opts.SARIF, "sarif", false, "print a SARIF 2.1.0 log, for code-scanning dashboards")
	cmd.Flags().StringVar(&opts.FailOn, "fail-on", "MEDIUM", "exit 1 when a finding of this `SEVERITY` or above is found (LOW, MEDIUM, HIGH, CRITICAL)")
	return cmd
}

// Finding is one finding as --json prints it.
type Finding struct {
	Severity string `json:"severity"`
	Entry    string `json:"entry"`
	Offset   int64  `json:"offset"`
	// Global is the global as CPython resolves it, or the anomaly's name.
	Global string `json:"global"`
	// Kind is "global" (a global or a call of one) or "anomaly".
	Kind        string `json:"kind"`
	Op          string `json:"op,omitempty"`
	Description string `json:"description"`

	sev pickle.Severity
}

// File is one scanned file as --json prints it.
type File struct {
	Path     string    `json:"path"`
	Format   string    `json:"format"`
	Findings []Finding `json:"findings"`
	Errors   []string  `json:"errors"`
	// skipped is a file found by walking a directory that is no model
	// file and no pickle; it is not reported.
	skipped bool
}

// Summary counts what the scan found.
type Summary struct {
	Files        int    `json:"files"`
	Clean        int    `json:"clean"`
	WithFindings int    `json:"with_findings"`
	Unreadable   int    `json:"unreadable"`
	Skipped      int    `json:"skipped"`
	Critical     int    `json:"critical"`
	High         int    `json:"high"`
	Medium       int    `json:"medium"`
	Low          int    `json:"low"`
	FailOn       string `json:"fail_on"`
	ExitCode     int    `json:"exit_code"`
}

// Result is what --json prints.
type Result struct {
	Summary Summary `json:"summary"`
	Files   []File  `json:"files"`
}

func scanRun(opts *Options) error {
	failOn, err := pickle.ParseSeverity(opts.FailOn)
	if err != nil {
		return cmdutil.UsageError("--fail-on %q: want LOW, MEDIUM, HIGH or CRITICAL", opts.FailOn)
	}
	if opts.JSON && opts.SARIF {
		return cmdutil.UsageError("--json and --sarif are exclusive")
	}
	res := Scan(opts.Paths, failOn)
	switch {
	case opts.JSON:
		if err := cmdutil.WriteJSON(opts.IO.Out, res); err != nil {
			return err
		}
	case opts.SARIF:
		if err := writeSARIF(opts.IO.Out, res); err != nil {
			return err
		}
	default:
		writeText(opts.IO.Out, res)
	}
	switch res.Summary.ExitCode {
	case cmdutil.ExitOK:
		return nil
	case cmdutil.ExitDifference:
		return cmdutil.ErrDifference
	}
	if res.Summary.Files == 0 {
		return &cmdutil.ExitError{Code: cmdutil.ExitInvalid, Err: fmt.Errorf("scan: no model file found in %s", strings.Join(opts.Paths, ", "))}
	}
	return &cmdutil.ExitError{Code: cmdutil.ExitInvalid, Err: fmt.Errorf("scan: %d of %d files could not be scanned to the end", res.Summary.Unreadable, res.Summary.Files)}
}

// Scan scans paths (files, directories recursively, index files with their
// shards) and decides the exit code with failOn.
func Scan(paths []string, failOn pickle.Severity) *Result {
	res := &Result{Files: []File{}}
	seen := map[string]bool{}
	var queue []string
	explicit := map[string]bool{}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			res.Files = append(res.Files, File{Path: p, Format: "unknown", Findings: []Finding{}, Errors: []string{fmt.Sprintf("scan: %v", err)}})
			continue
		}
		if !st.IsDir() {
			queue = append(queue, p)
			explicit[filepath.Clean(p)] = true
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if err != nil {
				res.Files = append(res.Files, File{Path: q, Format: "unknown", Findings: []Finding{}, Errors: []string{fmt.Sprintf("scan: %v", err)}})
				return nil
			}
			if d.Type().IsRegular() {
				found = append(found, q)
			} else if d.Type()&fs.ModeSymlink != 0 {
				// Hugging Face's cache links snapshot files to blobs:
				// links to files are followed, links to directories not.
				if st, err := os.Stat(q); err == nil && st.Mode().IsRegular() {
					found = append(found, q)
				}
			}
			return nil
		})
		sort.Strings(found)
		queue = append(queue, found...)
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		key := filepath.Clean(p)
		if seen[key] {
			continue
		}
		seen[key] = true
		f, more := scanFile(p, explicit[key])
		for _, s := range more {
			explicit[filepath.Clean(s)] = true
		}
		queue = append(queue, more...)
		res.Files = append(res.Files, f)
	}
	s := &res.Summary
	s.FailOn = failOn.String()
	worst := pickle.Severity(0)
	var kept []File
	for _, f := range res.Files {
		if f.skipped {
			s.Skipped++
			continue
		}
		kept = append(kept, f)
		s.Files++
		above := false
		for _, x := range f.Findings {
			worst = max(worst, x.sev)
			switch x.sev {
			case pickle.SeverityCritical:
				s.Critical++
			case pickle.SeverityHigh:
				s.High++
			case pickle.SeverityMedium:
				s.Medium++
			case pickle.SeverityLow:
				s.Low++
			}
			above = above || x.sev >= failOn
		}
		switch {
		case above:
			s.WithFindings++
		case len(f.Errors) > 0:
			s.Unreadable++
		default:
			s.Clean++
		}
		if above && len(f.Errors) > 0 {
			s.Unreadable++
		}
	}
	res.Files = kept
	if res.Files == nil {
		res.Files = []File{}
	}
	switch {
	case worst >= failOn:
		s.ExitCode = cmdutil.ExitDifference
	case s.Unreadable > 0 || s.Files == 0:
		s.ExitCode = cmdutil.ExitInvalid
	}
	return res
}

// scanFile scans one file. It returns the shards an index file names, to be
// scanned next. A file that is no model file and whose bytes are no pickle
// is skipped when it was found by walking a directory.
func scanFile(path string, explicit bool) (File, []string) {
	out := File{Path: path, Findings: []Finding{}, Errors: []string{}}
	fh, err := os.Open(path)
	if err != nil {
		out.Format = "unknown"
		out.Errors = append(out.Errors, fmt.Sprintf("scan: %v", err))
		return out, nil
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		out.Format = "unknown"
		out.Errors = append(out.Errors, fmt.Sprintf("scan: %v", err))
		return out, nil
	}
	size := st.Size()
	// What torch.load sees, first, whatever the file is.
	rep := pickle.Scan(fh, size)
	kind, kerr := formats.Detect(fh, size)
	head := make([]byte, min(size, 8))
	fh.ReadAt(head, 0)
	isNPY := bytes.HasPrefix(head, []byte("\x93NUMPY"))
	// A file that breaks as a pickle without naming a global or calling
	// anything is no pickle (text starting "I think" is an anomalous INT).
	torchFormat := rep.Format != pickle.FormatPickle || len(rep.Errors) == 0 || acts(rep)
	var shards []string
	switch {
	case isNPY:
		out.Format = "npy"
		addPolyglot(&out, rep)
		scanNPY(&out, fh, size, "")
	case kerr == nil && kind == formats.KindSafetensors:
		out.Format = "safetensors"
		addPolyglot(&out, rep)
		if _, err := safetensors.Read(fh, size, path); err != nil {
			out.Errors = append(out.Errors, err.Error())
		}
	case kerr == nil && kind == formats.KindONNX && rep.Format == pickle.FormatPickle && !acts(rep):
		out.Format = "onnx"
		m, err := onnx.Open(path)
		if err == nil {
			_, _, err = m.Initializers()
			m.Close()
		}
		if err != nil {
			var pe *onnx.ExternalPathError
			if errors.As(err, &pe) {
				addExternalPaths(&out, fh, size, filepath.Dir(path))
			}
			out.Errors = append(out.Errors, err.Error())
		}
	case kerr == nil && kind == formats.KindIndex && !acts(rep):
		out.Format = "index"
		x, err := safetensors.ReadIndex(path)
		if err != nil {
			if !explicit && !strings.HasSuffix(path, safetensors.IndexSuffix) {
				out.skipped = true // a JSON file, not an index
			}
			out.Errors = append(out.Errors, err.Error())
			return out, nil
		}
		for _, s := range x.Shards() {
			shards = append(shards, filepath.Join(filepath.Dir(path), s))
		}
	case rep.Format == pickle.FormatZip && isNPZ(fh, size):
		out.Format = "npz"
		// numpy.savez's members have no archive prefix: only the zip
		// anomalies that concern every reader apply.
		var kept []pickle.Finding
		for _, f := range rep.Findings {
			if f.Global != "zip-outside-prefix" {
				kept = append(kept, f)
			}
		}
		rep.Findings, rep.Errors = kept, nil
		addFindings(&out, rep)
		scanNPZ(&out, fh, size)
	case torchFormat:
		out.Format = rep.Format
		addFindings(&out, rep)
		scanCompanions(&out, filepath.Dir(path), rep.Companions)
	default:
		// Not a model file, and its bytes are no pickle: the walk failed
		// before any global, so torch.load would fail without acting.
		out.Format = "unknown"
		if !explicit {
			out.skipped = true
		}
		msg := "not a PyTorch, safetensors, ONNX, NumPy or pickle file"
		if len(rep.Errors) > 0 {
			msg += " (as a pickle: " + rep.Errors[0].Error() + ")"
		}
		out.Errors = append(out.Errors, "scan: "+msg)
	}
	return out, shards
}

// addExternalPaths reports every tensor of an ONNX model whose external
// data location leaves the model's directory (onnx.CheckExternalLocation,
// the rule the reader refuses them by). HIGH: it is no ambiguity between
// readers but an attack on the machine that loads the model, which reads
// a file of the attacker's choosing (~/.ssh/id_rsa, /etc/shadow) into the
// weights, where outputs or a re-saved model can leak it (onnx.load did so
// before onnx 1.16, CVE-2024-27318).
func addExternalPaths(out *File, r io.ReaderAt, size int64, dir string) {
	m, err := onnx.Decode(r, size, "")
	if err != nil {
		return
	}
	defer m.Close()
	for _, pe := range m.ExternalPathErrors(dir) {
		where := fmt.Sprintf("%q, outside the model directory", pe.Location)
		if pe.Target != "" {
			where = fmt.Sprintf("%q, a symbolic link to %s outside the model directory", pe.Location, pe.Target)
		}
		out.Findings = append(out.Findings, Finding{Severity: "HIGH", Entry: "tensor " + pe.Tensor, Global: "onnx-external-data-outside", Kind: "anomaly",
			Description: fmt.Sprintf("the tensor's external data is read from %s: a reader that follows it reads a file of the machine into the weights (onnx.load before 1.16 could be led out so, CVE-2024-27318)", where),
			sev:         pickle.SeverityHigh})
	}
}

// scanCompanions scans the files beside a pickle that joblib.load opens
// while loading it (the arrays of joblib 0.9 and before, see
// pickle.Companion). A name that leads out of the pickle's directory is
// HIGH, by the rule ONNX external data follows; a companion that
// numpy.load(allow_pickle=True) reads is scanned as numpy.load reads it
// (an .npz archive, an .npy file whose object arrays are pickles, any
// other file a pickle); one that is missing or unreadable is an error,
// since what joblib.load would read there cannot be vouched for.
func scanCompanions(out *File, dir string, cs []pickle.Companion) {
	seen := map[string]bool{}
	for _, c := range cs {
		if seen[c.Name] {
			continue
		}
		seen[c.Name] = true
		if target, ok := localpath.Check(dir, c.Name); !ok {
			where := fmt.Sprintf("%q, outside the file's directory,", c.Name)
			if target != "" {
				where = fmt.Sprintf("%q, a symbolic link to %s outside the file's directory,", c.Name, target)
			}
			what := "numpy.load(allow_pickle=True) unpickles it: a pickle the attacker placed or chose elsewhere runs"
			if !c.Pickled {
				what = "reads it into the array: a file of the machine the attacker chose (~/.ssh/id_rsa) ends up in the loaded object"
			}
			out.Findings = append(out.Findings, Finding{Severity: "HIGH", Entry: c.Entry, Offset: c.Offset, Global: "joblib-companion-outside", Kind: "anomaly",
				Description: fmt.Sprintf("joblib.load opens the array file %s and %s", where, what), sev: pickle.SeverityHigh})
			continue
		}
		entry := "companion file " + c.Name
		fh, err := os.Open(filepath.Join(dir, filepath.FromSlash(c.Name)))
		if err != nil {
			out.Errors = append(out.Errors, fmt.Sprintf("scan: joblib.load reads an array from %s: %v", entry, err))
			continue
		}
		st, err := fh.Stat()
		if err != nil || !c.Pickled {
			// A ZNDArrayWrapper's companion is the array's bytes, zlib
			// compressed: nothing in it is unpickled.
			if err != nil {
				out.Errors = append(out.Errors, fmt.Sprintf("scan: %s: %v", entry, err))
			}
			fh.Close()
			continue
		}
		size := st.Size()
		head := make([]byte, min(size, 6))
		fh.ReadAt(head, 0)
		switch {
		case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
			scanNPZ(out, fh, size)
		case bytes.HasPrefix(head, []byte("\x93NUMPY")):
			scanNPY(out, fh, size, entry)
		default:
			// numpy.load hands any other file to pickle.load.
			data := make([]byte, min(size, pickle.MaxPickleSize))
			fh.ReadAt(data, 0)
			fs, _, perr := pickle.ScanPickle(data)
			for i := range fs {
				fs[i].Entry = entry
			}
			addFindings(out, &pickle.Report{Findings: fs})
			if perr != nil {
				out.Errors = append(out.Errors, prefixed(entry, perr.Error()))
			}
		}
		fh.Close()
	}
}

func addFindings(out *File, rep *pickle.Report) {
	for _, f := range rep.Findings {
		kind := "global"
		if f.Anomaly {
			kind = "anomaly"
		}
		out.Findings = append(out.Findings, Finding{Severity: f.Severity.String(), Entry: f.Entry, Offset: f.Offset,
			Global: f.Global, Kind: kind, Op: f.Op, Description: f.Description, sev: f.Severity})
	}
	for _, e := range rep.Errors {
		out.Errors = append(out.Errors, e.Error())
	}
}

// addPolyglot reports, for a file of another format, what torch.load would
// act on if the file's bytes are also a pickle that does something.
func addPolyglot(out *File, rep *pickle.Report) {
	// Only globals and calls count: an encoding anomaly alone, in bytes
	// that were never meant as a pickle, is noise (a pretty-printed
	// safetensors header read as an INT line).
	if !acts(rep) {
		return
	}
	addFindings(out, rep)
	out.Errors = out.Errors[:0] // the pickle's end is not this format's concern
	out.Findings = append(out.Findings, Finding{Severity: "MEDIUM", Global: "pickle-polyglot", Kind: "anomaly",
		Description: fmt.Sprintf("the file is a valid %s file and also a pickle that torch.load would run", out.Format), sev: pickle.SeverityMedium})
}

// acts reports whether the pickle reading of a file names a global outside
// the allow-list or calls something (HIGH or CRITICAL findings): encoding
// anomalies and class names alone, in bytes that then stop being a pickle,
// are text or another format (a README starting "config" is a GLOBAL).
func acts(rep *pickle.Report) bool {
	for _, f := range rep.Findings {
		if f.Severity >= pickle.SeverityHigh {
			return true
		}
	}
	return false
}

// isNPZ reports whether the zip archive holds NumPy arrays (numpy.savez):
// no data.pkl, and every member a .npy file.
func isNPZ(r io.ReaderAt, size int64) bool {
	zr, err := zip.NewReader(r, size)
	if err != nil || len(zr.File) == 0 {
		return false
	}
	for _, f := range zr.File {
		if !strings.HasSuffix(strings.ToLower(f.Name), ".npy") {
			return false
		}
	}
	return true
}

func scanNPZ(out *File, r io.ReaderAt, size int64) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		out.Errors = append(out.Errors, fmt.Sprintf("scan: npz: %v", err))
		return
	}
	for _, f := range zr.File {
		if f.UncompressedSize64 > pickle.MaxPickleSize {
			out.Errors = append(out.Errors, fmt.Sprintf("scan: npz: member %q of %d bytes exceeds limit %d", f.Name, f.UncompressedSize64, pickle.MaxPickleSize))
			continue
		}
		rc, err := f.Open()
		if err != nil {
			out.Errors = append(out.Errors, fmt.Sprintf("scan: npz: member %q: %v", f.Name, err))
			continue
		}
		b, err := io.ReadAll(io.LimitReader(rc, int64(f.UncompressedSize64)+1))
		rc.Close()
		if err != nil {
			out.Errors = append(out.Errors, fmt.Sprintf("scan: npz: member %q: %v", f.Name, err))
			continue
		}
		scanNPY(out, bytes.NewReader(b), int64(len(b)), f.Name)
	}
}

// scanNPY validates a .npy array; an object array's data is a pickle
// (numpy.load(allow_pickle=True) unpickles it), which is scanned.
func scanNPY(out *File, r io.ReaderAt, size int64, entry string) {
	_, err := npy.Read(r, size)
	if err == nil {
		return
	}
	hdr := make([]byte, min(size, 12+npy.MaxHeaderSize))
	n, _ := r.ReadAt(hdr, 0)
	hdr = hdr[:n]
	start, hlen := int64(0), int64(0)
	if len(hdr) >= 10 && hdr[6] == 1 {
		start, hlen = 10, int64(hdr[8])|int64(hdr[9])<<8
	} else if len(hdr) >= 12 {
		start, hlen = 12, int64(hdr[8])|int64(hdr[9])<<8|int64(hdr[10])<<16|int64(hdr[11])<<24
	}
	if start == 0 || start+hlen > int64(len(hdr)) || !objectDescr(string(hdr[start:start+hlen])) {
		out.Errors = append(out.Errors, prefixed(entry, err.Error()))
		return
	}
	data := make([]byte, min(size-start-hlen, pickle.MaxPickleSize))
	r.ReadAt(data, start+hlen)
	fs, _, perr := pickle.ScanPickle(data)
	for _, f := range fs {
		f.Entry = entry
		if entry == "" {
			f.Entry = "object array"
		}
		f.Offset += start + hlen
		addFindings(out, &pickle.Report{Findings: []pickle.Finding{f}})
	}
	if perr != nil {
		out.Errors = append(out.Errors, prefixed(entry, perr.Error()))
	}
}

// objectDescr reports whether a .npy header's descr has an object type
// ('O', alone or as a field of a structured type).
func objectDescr(h string) bool {
	i := strings.Index(h, "'descr'")
	if i < 0 {
		return false
	}
	rest := h[i+len("'descr'"):]
	if j := strings.Index(rest, "'fortran_order'"); j >= 0 {
		rest = rest[:j]
	} else if j := strings.Index(rest, "'shape'"); j >= 0 {
		rest = rest[:j]
	}
	return strings.Contains(rest, "O'") || strings.Contains(rest, "O\"")
}

func prefixed(entry, msg string) string {
	if entry == "" {
		return msg
	}
	return msg + " (in " + entry + ")"
}
