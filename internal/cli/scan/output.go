package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/ckptkit/ckpt/pickle"
)

// writeText prints the report for people: per file its format and
// findings (worst first is not imposed: file order, as found), then a
// summary line.
func writeText(w io.Writer, res *Result) {
	for _, f := range res.Files {
		switch {
		case len(f.Findings) == 0 && len(f.Errors) == 0:
			fmt.Fprintf(w, "%s: %s, clean\n", f.Path, f.Format)
		case len(f.Findings) == 0:
			fmt.Fprintf(w, "%s: %s, NOT SCANNED to the end\n", f.Path, f.Format)
		default:
			fmt.Fprintf(w, "%s: %s, %s\n", f.Path, f.Format, plural(len(f.Findings), "finding"))
		}
		for _, x := range f.Findings {
			where := x.Entry
			if where == "" {
				where = "file"
			}
			what := x.Global
			if what == "" {
				what = "(a computed value)"
			}
			if x.Op != "" {
				what = x.Op + " " + what
			}
			fmt.Fprintf(w, "  %-8s  %s at offset %d: %s: %s\n", x.Severity, where, x.Offset, what, x.Description)
		}
		for _, e := range f.Errors {
			fmt.Fprintf(w, "  ERROR     %s\n", e)
		}
	}
	s := res.Summary
	var counts []string
	for _, c := range []struct {
		n    int
		name string
	}{{s.Critical, "CRITICAL"}, {s.High, "HIGH"}, {s.Medium, "MEDIUM"}, {s.Low, "LOW"}} {
		if c.n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", c.n, c.name))
		}
	}
	line := fmt.Sprintf("scanned %s: %d clean, %d with findings at or above %s, %d not scanned to the end",
		plural(s.Files, "file"), s.Clean, s.WithFindings, s.FailOn, s.Unreadable)
	if len(counts) > 0 {
		line += " (" + strings.Join(counts, ", ") + ")"
	}
	if s.Skipped > 0 {
		line += fmt.Sprintf("; %s skipped (not model files)", plural(s.Skipped, "file"))
	}
	fmt.Fprintln(w, line)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// SARIF 2.1.0 (https://docs.oasis-open.org/sarif/sarif/v2.1.0/): one run,
// one rule per kind of finding, one result per finding located by the
// file's path, the byte offset and the entry as a logical location; files
// that could not be scanned are tool execution notifications, and the
// invocation is unsuccessful when there are any.

type sarifLog struct {
	Version string     `json:"version"`
	Schema  string     `json:"$schema"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Results     []sarifResult     `json:"results"`
	Invocations []sarifInvocation `json:"invocations"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID               string         `json:"id"`
	ShortDescription sarifText      `json:"shortDescription"`
	Properties       map[string]any `json:"properties"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical  `json:"physicalLocation"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	ByteOffset int64 `json:"byteOffset"`
}

type sarifLogical struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

type sarifInvocation struct {
	ExecutionSuccessful        bool                `json:"executionSuccessful"`
	ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations"`
}

// ruleOf names the rule of a finding.
func ruleOf(x Finding) (id, desc string) {
	if x.Kind == "anomaly" {
		return x.Global, "Container or encoding anomaly: " + x.Global
	}
	switch x.sev {
	case pickle.SeverityCritical:
		return "dangerous-global", "A global or call that runs code or reaches the operating system"
	case pickle.SeverityHigh:
		return "unlisted-global", "A global or call outside the weights-only allow-list"
	}
	return "user-class", "A class outside torch that torch.load imports"
}

// fileURI is path as a URI reference (relative paths stay relative), with
// the characters a URI cannot hold escaped.
func fileURI(path string) string {
	return (&url.URL{Path: filepath.ToSlash(path)}).String()
}

// securitySeverity is GitHub code scanning's 0-10 score per severity.
var securitySeverity = map[string]string{"CRITICAL": "9.8", "HIGH": "8.0", "MEDIUM": "5.0", "LOW": "2.0"}

func writeSARIF(w io.Writer, res *Result) error {
	run := sarifRun{
		Tool:    sarifTool{Driver: sarifDriver{Name: "ckpt scan", InformationURI: "https://github.com/ckptkit/ckpt", Rules: []sarifRule{}}},
		Results: []sarifResult{},
	}
	rules := map[string]bool{}
	inv := sarifInvocation{ExecutionSuccessful: res.Summary.Unreadable == 0, ToolExecutionNotifications: []sarifNotification{}}
	for _, f := range res.Files {
		for _, x := range f.Findings {
			id, desc := ruleOf(x)
			if !rules[id] {
				rules[id] = true
				run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{ID: id, ShortDescription: sarifText{desc},
					Properties: map[string]any{"security-severity": securitySeverity[x.Severity], "tags": []string{"security"}}})
			}
			level := map[string]string{"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note"}[x.Severity]
			loc := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: fileURI(f.Path)}, Region: &sarifRegion{ByteOffset: x.Offset}}}
			if x.Entry != "" {
				loc.LogicalLocations = []sarifLogical{{Name: x.Entry, Kind: "member"}}
			}
			run.Results = append(run.Results, sarifResult{RuleID: id, Level: level, Message: sarifText{x.Description}, Locations: []sarifLocation{loc},
				Properties: map[string]any{"severity": x.Severity, "global": x.Global, "op": x.Op, "format": f.Format}})
		}
		for _, e := range f.Errors {
			inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, sarifNotification{Level: "error", Message: sarifText{e},
				Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: fileURI(f.Path)}}}}})
		}
	}
	run.Invocations = []sarifInvocation{inv}
	b, err := json.MarshalIndent(sarifLog{Version: "2.1.0", Schema: "https://json.schemastore.org/sarif-2.1.0.json", Runs: []sarifRun{run}}, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
