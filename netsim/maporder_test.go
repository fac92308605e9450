package netsim

// This file is a self-contained guard against map-order leaks. Copy it into
// any package (change the package clause) to check that package: it needs
// only the standard library and the go command.

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestNoMapRange fails if the package's non-test code ranges over a map,
// or over maps.Keys, maps.Values or maps.All, except on a line that carries
// (or follows a line that is) a comment starting with "// sorted:" saying
// why the order cannot leak.
func TestNoMapRange(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatal("no non-test Go files found")
	}
	imp, err := exportImporter(fset, ".")
	if err != nil {
		t.Fatal(err)
	}
	found, err := mapRanges(fset, files, imp)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: range over a map; sort the keys, or mark the line // sorted: why", f)
	}
}

// TestMapRangeCheck makes sure the check above finds what it should.
func TestMapRangeCheck(t *testing.T) {
	const src = `package p

import "maps"

type set map[string]bool

func f(m map[string]int, s set, xs []int) {
	for k := range m { _ = k }           // leak 1
	for k := range s { _ = k }           // leak 2: named map type
	for k := range maps.Keys(m) { _ = k } // leak 3
	for _, x := range xs { _ = x }        // slice: fine
	// sorted: only counts, order-free
	for range m {}
	for range m {} // sorted: same line
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := exportImporter(fset, "maps")
	if err != nil {
		t.Fatal(err)
	}
	found, err := mapRanges(fset, []*ast.File{f}, imp)
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, p := range found {
		lines = append(lines, p.Line)
	}
	if want := []int{8, 9, 10}; !slices.Equal(lines, want) {
		t.Fatalf("flagged lines %v, want %v", lines, want)
	}
}

// mapRanges type-checks files as one package and returns the positions of
// unmarked range statements over maps or map iterators.
func mapRanges(fset *token.FileSet, files []*ast.File, imp types.Importer) ([]token.Position, error) {
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: imp}
	if _, err := conf.Check(files[0].Name.Name, fset, files, info); err != nil {
		return nil, err
	}
	var found []token.Position
	for _, f := range files {
		marked := map[int]bool{} // lines with, or right after, a // sorted: comment
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				if strings.HasPrefix(c.Text, "// sorted:") {
					line := fset.Position(c.Pos()).Line
					marked[line], marked[line+1] = true, true
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			rs, ok := n.(*ast.RangeStmt)
			if !ok || !overMap(rs.X, info) {
				return true
			}
			if pos := fset.Position(rs.For); !marked[pos.Line] {
				found = append(found, pos)
			}
			return true
		})
	}
	return found, nil
}

// overMap reports whether x is a map or a call of maps.Keys, maps.Values
// or maps.All.
func overMap(x ast.Expr, info *types.Info) bool {
	if tv, ok := info.Types[x]; ok {
		if _, isMap := tv.Type.Underlying().(*types.Map); isMap {
			return true
		}
	}
	call, ok := ast.Unparen(x).(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	fn, ok := info.Uses[sel.Sel].(*types.Func)
	if !ok || fn.Pkg() == nil || fn.Pkg().Path() != "maps" {
		return false
	}
	switch fn.Name() {
	case "Keys", "Values", "All":
		return true
	}
	return false
}

// exportImporter returns an importer that reads the compiler's export data
// for pkgs and all their dependencies, located with `go list -export`.
func exportImporter(fset *token.FileSet, pkgs ...string) (types.Importer, error) {
	args := append([]string{"list", "-export", "-deps", "-f", "{{.ImportPath}}={{.Export}}"}, pkgs...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	exports := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if path, file, ok := strings.Cut(sc.Text(), "="); ok && file != "" {
			exports[path] = file
		}
	}
	lookup := func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %q", path)
		}
		return os.Open(file)
	}
	return importer.ForCompiler(fset, "gc", lookup), nil
}
