package train

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestConfigJSONHasEveryField checks that config.json writes every Config
// field, set to a non-zero value, under its own key, unless
// configNotWritten leaves it out, so that a new setting cannot be
// forgotten; and that what it leaves out is not written.
func TestConfigJSONHasEveryField(t *testing.T) {
	var cfg Config
	v := reflect.ValueOf(&cfg).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(3)
		case reflect.Uint64:
			f.SetUint(3)
		case reflect.Float64:
			f.SetFloat(0.5)
		default:
			t.Fatalf("Config.%s: kind %s not handled by this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	b, err := json.Marshal(newRunConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	// Keys RunConfig writes for a field instead of Config's own tag.
	elsewhere := map[string]string{"TimeLimit": "time_limit"}
	for i := 0; i < v.NumField(); i++ {
		sf := v.Type().Field(i)
		key, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if k, ok := elsewhere[sf.Name]; ok {
			key = k
		}
		why, excluded := configNotWritten[sf.Name]
		switch {
		case excluded && key != "-":
			t.Errorf("Config.%s is listed as not written (%s) but has JSON key %q", sf.Name, why, key)
		case excluded:
		case key == "-" || key == "":
			t.Errorf("Config.%s has no json tag (config.json keys are snake_case) and is not in configNotWritten", sf.Name)
		default:
			if _, ok := got[key]; !ok {
				t.Errorf("Config.%s: config.json has no %q: %s", sf.Name, key, b)
			}
		}
	}
	for name := range configNotWritten {
		if _, ok := v.Type().FieldByName(name); !ok {
			t.Errorf("configNotWritten lists %s, which Config does not have", name)
		}
	}
	if want := (3 * time.Nanosecond).String(); got["time_limit"] != want {
		t.Errorf("time_limit: got %v, want %q", got["time_limit"], want)
	}
	// --resume reads config.json into a Config: the time limit is not
	// taken back, the cache directory is.
	var back Config
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.TimeLimit != 0 || back.CacheDir != "x" {
		t.Errorf("read back: time limit %v, cache dir %q; want 0 and %q", back.TimeLimit, back.CacheDir, "x")
	}
}
