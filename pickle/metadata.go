package pickle

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// MetadataRecord is the zip member, under the archive prefix, that holds a
// checkpoint's string metadata: ckpt writes it (package formats/pytorch)
// so that a state_dict file can carry what a safetensors file's
// __metadata__ does (a run's arch, class names and preprocessing).
//
// Its content is one JSON object whose values are all strings, like
// safetensors' __metadata__:
//
//	{"arch":"resnet18","classes":"[\"cat\",\"dog\"]"}
//
// Keys are unique and kept in the order written. TorchScript keeps the
// extra files of torch.jit.save(_extra_files=...) under the same extra/
// directory; torch.load reads only data.pkl, data/, version and byteorder
// of an archive and ignores the record, and Python reads it with zipfile:
//
//	json.loads(zipfile.ZipFile(path).read("archive/extra/ckpt_metadata.json"))
//
// (the prefix is the archive's, "archive" in ckpt's files).
const MetadataRecord = "extra/ckpt_metadata.json"

// KeyValue is one entry of the metadata record.
type KeyValue struct {
	Key, Value string
}

// ParseMetadata decodes the content of a metadata record: a JSON object of
// unique string keys to string values, returned in the order written.
// Nothing but white space may follow the object.
func ParseMetadata(b []byte) ([]KeyValue, error) {
	if len(b) > MaxMetadataSize {
		return nil, fmt.Errorf("%d bytes exceed limit %d", len(b), MaxMetadataSize)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	} else if tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	out := []KeyValue{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("invalid JSON: key %v is not a string", tok)
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		v, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("value of %q is not a string", key)
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q given twice", key)
		}
		seen[key] = true
		out = append(out, KeyValue{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON object at offset %d", dec.InputOffset())
	}
	return out, nil
}

// readMetadata reads the archive's metadata record, if it has one.
func (a *zipArchive) readMetadata() ([]KeyValue, error) {
	f := a.entry(MetadataRecord)
	if f == nil {
		return nil, nil
	}
	return metadataMember(f)
}

// metadataMember reads and decodes the metadata record f.
func metadataMember(f *zip.File) ([]KeyValue, error) {
	if f.UncompressedSize64 > MaxMetadataSize {
		return nil, fmt.Errorf("pickle: zip: metadata record %q of %d bytes exceeds limit %d", f.Name, f.UncompressedSize64, MaxMetadataSize)
	}
	b, err := readMember(f)
	if err != nil {
		return nil, err
	}
	m, err := ParseMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("pickle: zip: metadata record %q: %v", f.Name, err)
	}
	return m, nil
}
