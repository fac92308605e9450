package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cosnim/relays/relay"
)

// docRows returns the rows of the tables of docs/CONFIG.md whose first
// cell is a `key`, each as its trimmed cells, under the heading that
// precedes them.
func docRows(t *testing.T) map[string][][]string {
	t.Helper()
	doc, err := os.ReadFile("../../../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][][]string{} // heading → rows
	heading := ""
	for line := range strings.Lines(string(doc)) {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			heading = strings.TrimSpace(h)
			continue
		}
		cells := strings.Split(strings.TrimSpace(line), "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		cells = cells[1 : len(cells)-1]
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		cells[0] = strings.Trim(cells[0], "`")
		rows[heading] = append(rows[heading], cells)
	}
	return rows
}

// TestDefaultsDocumented keeps the client and server tables of
// docs/CONFIG.md in step with Defaults.
func TestDefaultsDocumented(t *testing.T) {
	documented := map[string]string{} // key → default column
	rows := docRows(t)
	for _, r := range append(rows["client"], rows["server"]...) {
		documented[r[0]] = r[1]
	}
	d := Defaults()
	checked := 0
	for _, v := range []any{d.Client, d.Server} {
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
	if checked < 4 {
		t.Errorf("checked %d defaults, want at least 4", checked)
	}
}

// TestLimitsDocumented keeps the server.limits table of docs/CONFIG.md
// in step with relay.Limits: the same keys in the same order, and for
// each its default, rule and meaning.
func TestLimitsDocumented(t *testing.T) {
	got := docRows(t)["server.limits"]
	var want [][]string
	for _, l := range relay.Limits() {
		want = append(want, []string{l.Key, l.Unit.Format(l.Default), l.Rule(), l.Doc})
	}
	if len(want) < 14 {
		t.Fatalf("relay.Limits has %d limits, want at least 14", len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("docs/CONFIG.md server.limits (key, default, rule, meaning) differs from relay.Limits (-want +got):\n%s", diff)
	}
}
