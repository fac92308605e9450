package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDefaultsDocumented keeps the tables of docs/CONFIG.md in step with Defaults.
func TestDefaultsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{} // key → default column
	for line := range strings.Lines(string(doc)) {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		key := strings.Trim(strings.TrimSpace(cells[1]), "`")
		documented[key] = strings.TrimSpace(cells[2])
	}
	d := Defaults()
	checked := 0
	for _, v := range []any{d.Client, d.Server, d.Server.Limits} {
		rv := reflect.ValueOf(v)
		for i := range rv.NumField() {
			f, fv := rv.Type().Field(i), rv.Field(i)
			key := f.Tag.Get("mapstructure")
			if key == "-" || fv.IsZero() || fv.Kind() == reflect.Struct && f.Type != durationType {
				continue
			}
			var want string
			switch x := fv.Interface().(type) {
			case time.Duration:
				want = x.String()
			default:
				want = fmt.Sprint(x)
			}
			if got, ok := documented[key]; !ok {
				t.Errorf("%s: default %s not documented in docs/CONFIG.md", key, want)
			} else if got != want {
				t.Errorf("%s: docs/CONFIG.md says %q, Defaults says %q", key, got, want)
			}
			checked++
		}
	}
	if checked < 17 {
		t.Errorf("checked %d defaults, want at least 17", checked)
	}
}
