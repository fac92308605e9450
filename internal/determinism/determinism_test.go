package determinism

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

// checked are the packages whose behaviour must replay byte for byte.
var checked = []string{"relay", "client", "roster", "wire", "transport", "netsim", "sim", "internal/timerq", "internal/fault"}

// cores are the packages where the core rule holds for every file: drivers
// live in packages of their own (relay/relayserver, client/agent,
// transport/tcp), so no file list is needed.
var cores = []string{"relay", "client", "roster", "wire", "transport", "internal/timerq", "internal/fault"}

// forbidden are imports that no core may reach, even transitively: the
// network stack, TLS, HTTP, metrics, signals and the drivers themselves.
var forbidden = []string{
	"net", "net/http", "crypto/tls", "os/signal", "os/exec",
	"github.com/prometheus/client_golang/prometheus",
	"github.com/pingcap/failpoint",
	"github.com/cosnim/relays/transport/tcp",
	"github.com/cosnim/relays/internal/secret",
	"github.com/cosnim/relays/netsim",
	"github.com/cosnim/relays/sim",
}

// TestCoreImports fails if a core package reaches a forbidden package.
func TestCoreImports(t *testing.T) {
	for _, dir := range cores {
		deps := goListDeps(t, "github.com/cosnim/relays/"+dir)
		for _, bad := range forbidden {
			if slices.Contains(deps, bad) {
				t.Errorf("%s imports %s (transitively); keep it in a driver", dir, bad)
			}
		}
	}
}

// TestArrows checks the other arrows of DESIGN.md's shape: netsim sees
// only the seams, and the simulator runs cores on netsim, never drivers.
func TestArrows(t *testing.T) {
	const mod = "github.com/cosnim/relays/"
	drivers := []string{mod + "transport/tcp", mod + "relay/relayserver", mod + "client/agent"}
	for pkg, bad := range map[string][]string{ // sorted: each checked alone
		"netsim": append([]string{mod + "relay", mod + "client", mod + "sim"}, drivers...),
		"sim":    drivers,
	} {
		deps := goListDeps(t, mod+pkg)
		for _, b := range bad {
			if slices.Contains(deps, b) {
				t.Errorf("%s imports %s (transitively): the arrows of DESIGN.md forbid it", pkg, b)
			}
		}
	}
}

// TestCoreImportsCheck makes sure the check sees a driver's imports.
func TestCoreImportsCheck(t *testing.T) {
	deps := goListDeps(t, "github.com/cosnim/relays/relay/relayserver")
	for _, want := range []string{"net/http", "crypto/tls", "github.com/prometheus/client_golang/prometheus"} {
		if !slices.Contains(deps, want) {
			t.Errorf("relayserver's deps lack %s: the check cannot see imports", want)
		}
	}
}

func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func parseDir(t *testing.T, fset *token.FileSet, dir string) (files []*ast.File, names []string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		names = append(names, filepath.ToSlash(filepath.Join(dir, filepath.Base(path))))
	}
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return files, names
}

// TestNoMapRange fails if checked packages range over a map, or over
// maps.Keys, maps.Values or maps.All, except on a line that carries (or
// follows a line that is) a comment starting with "// sorted:" saying why
// the order cannot leak.
func TestNoMapRange(t *testing.T) {
	for _, dir := range checked {
		fset := token.NewFileSet()
		files, _ := parseDir(t, fset, dir)
		imp, err := exportImporter(fset, "github.com/cosnim/relays/"+dir)
		if err != nil {
			t.Fatal(err)
		}
		found, err := mapRanges(fset, files, imp)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, f := range found {
			t.Errorf("%s: range over a map; sort the keys, or mark the line // sorted: why", f)
		}
	}
}

// TestCoresStayPure fails if a core file starts a goroutine, reads or waits
// on the wall clock, or draws from a global or system random source.
func TestCoresStayPure(t *testing.T) {
	for _, dir := range cores {
		fset := token.NewFileSet()
		files, _ := parseDir(t, fset, dir)
		for _, f := range files {
			for _, p := range impurities(fset, f) {
				t.Errorf("%s: %s in a core package; take it from the driver as an event or a handed-in source", p.pos, p.what)
			}
		}
	}
}

type impurity struct {
	pos  token.Position
	what string
}

// impurities lists go statements, wall-clock calls and global randomness in f.
func impurities(fset *token.FileSet, f *ast.File) []impurity {
	var out []impurity
	for _, imp := range f.Imports {
		switch strings.Trim(imp.Path.Value, `"`) {
		case "crypto/rand", "math/rand":
			out = append(out, impurity{fset.Position(imp.Pos()), "import of " + imp.Path.Value})
		}
	}
	clock := map[string]bool{"Now": true, "Sleep": true, "After": true, "AfterFunc": true, "Tick": true, "NewTimer": true, "NewTicker": true, "Since": true, "Until": true}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			out = append(out, impurity{fset.Position(n.Pos()), "go statement"})
		case *ast.SelectorExpr:
			pkg, ok := n.X.(*ast.Ident)
			if !ok {
				return true
			}
			switch {
			case pkg.Name == "time" && clock[n.Sel.Name]:
				out = append(out, impurity{fset.Position(n.Pos()), "time." + n.Sel.Name})
			case pkg.Name == "rand" && n.Sel.Name != "Rand" && n.Sel.Name != "New" && !strings.HasPrefix(n.Sel.Name, "New"):
				out = append(out, impurity{fset.Position(n.Pos()), "global rand." + n.Sel.Name})
			}
		}
		return true
	})
	return out
}

// TestImpurityCheck makes sure the check above finds what it should.
func TestImpurityCheck(t *testing.T) {
	const src = `package p

import (
	"math/rand/v2"
	"time"
)

func f(r *rand.Rand, now time.Time) {
	go func() {}()            // 9
	_ = time.Now()            // 10
	_ = rand.IntN(3)          // 11
	_ = r.IntN(3)             // fine: handed-in source
	_ = now.Add(time.Second)  // fine
	_ = rand.New(rand.NewPCG(1, 2)) // fine: seeded
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, p := range impurities(fset, f) {
		lines = append(lines, p.pos.Line)
	}
	if want := []int{9, 10, 11}; !slices.Equal(lines, want) {
		t.Fatalf("flagged lines %v, want %v", lines, want)
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

// TestBinaryLinksNoNATSServer: the NATS server is for tests only; the
// relay binary links the NATS client and no server, and no core reaches
// the NATS driver.
func TestBinaryLinksNoNATSServer(t *testing.T) {
	const mod = "github.com/cosnim/relays/"
	deps := goListDeps(t, mod+"cmd/cosnim")
	if !slices.Contains(deps, "github.com/nats-io/nats.go") {
		t.Errorf("cmd/cosnim's deps lack nats.go: the check cannot see the backbone driver")
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/nats-io/nats-server") || d == mod+"internal/testnats" {
			t.Errorf("cmd/cosnim links %s, which is for tests only", d)
		}
	}
	for _, dir := range append([]string{"backbone"}, cores...) {
		for _, d := range goListDeps(t, mod+dir) {
			if strings.HasPrefix(d, "github.com/nats-io/") || d == mod+"backbone/nats" {
				t.Errorf("%s imports %s (transitively); keep it in the backbone driver", dir, d)
			}
		}
	}
}
