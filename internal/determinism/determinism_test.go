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
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// checked are the packages whose behaviour must replay byte for byte, with
// every package below them (see packages).
var checked = []string{"relay", "client", "roster", "wire", "transport", "backbone", "netsim", "sim", "internal"}

// cores are the packages where the core rule holds for every file, with
// every package below them: drivers live in packages of their own (see
// notCore), so no file list is needed. netsim is held to the same rule: it
// is the simulated world, and a goroutine or a clock there breaks replay.
var cores = []string{"relay", "client", "roster", "wire", "transport", "backbone", "netsim",
	"internal/timerq", "internal/fault", "internal/defaults", "internal/wirepeer", "internal/badrelay"}

// notCore are the packages below checked or core directories that are
// drivers or tools, each with why; packages skips them.
var notCore = map[string]string{
	"relay/relayserver":       "the production relay's driver",
	"client/agent":            "the client's driver",
	"transport/tcp":           "the real transport",
	"backbone/nats":           "the NATS backbone driver",
	"internal/fault/registry": "the pingcap/failpoint registry the simulator hands cores",
	"internal/buildinfo":      "reads the binary's build information",
	"internal/determinism":    "this guard",
	"internal/hostile":        "attacks on the real binary",
	"internal/ratelog":        "rate-limits a driver's logs by the wall clock",
	"internal/secret":         "stretches secrets, with goroutines (Argon2id)",
	"internal/testnats":       "NATS servers for tests",
	"internal/testpki":        "certificates for tests",
	"internal/testrelay":      "real relays for tests",
	"internal/testutil":       "test helpers",
}

// packages lists dir and every package directory below it, skipping
// notCore ones (and what is below them).
func packages(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if _, skip := notCore[rel]; skip || d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if goFiles(path) > 0 {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// goFiles counts the non-test Go files in dir.
func goFiles(dir string) int {
	paths, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	n := 0
	for _, p := range paths {
		if !strings.HasSuffix(p, "_test.go") {
			n++
		}
	}
	return n
}

// all expands dirs with packages.
func all(t *testing.T, dirs []string) []string {
	var out []string
	for _, d := range dirs {
		for _, p := range packages(t, d) {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

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
	for _, dir := range all(t, cores) {
		deps := goListDeps(t, "github.com/cosnim/relays/"+dir)
		for _, bad := range forbidden {
			if bad != "github.com/cosnim/relays/"+dir && slices.Contains(deps, bad) {
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

func goListDeps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkgs, err)
	}
	return strings.Fields(string(out))
}

// pkg is one package parsed and type-checked.
type pkg struct {
	fset  *token.FileSet
	files []*ast.File
	info  *types.Info
}

// shared is one importer for every checked package: one go list, not one
// per package.
var shared struct {
	once sync.Once
	fset *token.FileSet
	imp  types.Importer
	err  error
}

// loadPkg parses and type-checks the package in dir.
func loadPkg(t *testing.T, dir string) *pkg {
	t.Helper()
	shared.once.Do(func() {
		var paths []string
		for _, d := range all(t, checked) {
			paths = append(paths, "github.com/cosnim/relays/"+d)
		}
		shared.fset = token.NewFileSet()
		shared.imp, shared.err = exportImporter(shared.fset, paths...)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	files, _ := parseDir(t, shared.fset, dir)
	p, err := check(shared.fset, files, shared.imp)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return p
}

// loadSource parses and type-checks one file of source, importing from
// the standard library only.
func loadSource(t *testing.T, src string, imports ...string) *pkg {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := exportImporter(fset, imports...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := check(fset, []*ast.File{f}, imp)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func check(fset *token.FileSet, files []*ast.File, imp types.Importer) (*pkg, error) {
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: imp}
	if _, err := conf.Check(files[0].Name.Name, fset, files, info); err != nil {
		return nil, err
	}
	return &pkg{fset, files, info}, nil
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
	for _, dir := range all(t, checked) {
		for _, f := range mapRanges(loadPkg(t, dir)) {
			t.Errorf("%s: range over a map; sort the keys, or mark the line // sorted: why", f)
		}
	}
}

// TestCoresStayPure fails if a core file starts a goroutine, reads or waits
// on the wall clock, or draws from a global or system random source.
func TestCoresStayPure(t *testing.T) {
	for _, dir := range all(t, cores) {
		for _, p := range impurities(loadPkg(t, dir)) {
			t.Errorf("%s: %s in a core package; take it from the driver as an event or a handed-in source", p.pos, p.what)
		}
	}
}

// TestSimulatedIsCore: every package of this module that the simulator
// runs is held to the core rule (or is the simulator itself, or a notCore
// package the simulator hands cores), so a package added to the simulated
// world cannot escape the checks.
func TestSimulatedIsCore(t *testing.T) {
	const mod = "github.com/cosnim/relays/"
	covered := all(t, cores)
	for _, d := range goListDeps(t, mod+"sim", mod+"sim/value") {
		rel, ok := strings.CutPrefix(d, mod)
		if !ok || rel == "sim" || strings.HasPrefix(rel, "sim/") || rel == "internal/fault/registry" {
			continue
		}
		if !slices.Contains(covered, rel) {
			t.Errorf("the simulator runs %s, which is not a core: add it to cores (or say in notCore why not)", rel)
		}
	}
}

// TestPackagesWalk: the checks reach subpackages (sim/value), netsim and
// backbone, and skip the drivers.
func TestPackagesWalk(t *testing.T) {
	got := all(t, checked)
	for _, want := range []string{"sim/value", "netsim", "backbone", "internal/timerq"} {
		if !slices.Contains(got, want) {
			t.Errorf("checked packages %v lack %s", got, want)
		}
	}
	for dir := range notCore { // sorted: independent checks
		if slices.Contains(got, dir) {
			t.Errorf("checked packages include %s, a driver or tool", dir)
		}
		if goFiles(filepath.Join("..", "..", dir)) == 0 {
			t.Errorf("notCore names %s, which has no Go files: drop it", dir)
		}
	}
}

type impurity struct {
	pos  token.Position
	what string
}

// clockFuncs are the package time functions that read or wait on the clock.
var clockFuncs = []string{"Now", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker", "Since", "Until"}

// impurities lists go statements, wall-clock calls and global randomness
// in p, resolving each name through the type checker (a renamed or dot
// import is seen; a local named time is not package time).
func impurities(p *pkg) []impurity {
	var out []impurity
	for _, f := range p.files {
		for _, imp := range f.Imports {
			switch strings.Trim(imp.Path.Value, `"`) {
			case "crypto/rand", "math/rand":
				out = append(out, impurity{p.fset.Position(imp.Pos()), "import of " + imp.Path.Value})
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				out = append(out, impurity{p.fset.Position(n.Pos()), "go statement"})
			case *ast.Ident:
				fn, ok := p.info.Uses[n].(*types.Func)
				if !ok || fn.Pkg() == nil || fn.Type().(*types.Signature).Recv() != nil {
					return true
				}
				switch path := fn.Pkg().Path(); {
				case path == "time" && slices.Contains(clockFuncs, fn.Name()):
					out = append(out, impurity{p.fset.Position(n.Pos()), "time." + fn.Name()})
				case (path == "math/rand/v2" || path == "math/rand") && !strings.HasPrefix(fn.Name(), "New"):
					out = append(out, impurity{p.fset.Position(n.Pos()), "global rand." + fn.Name()})
				}
			}
			return true
		})
	}
	return out
}

// TestImpurityCheck makes sure the check above finds what it should,
// through renamed and dot imports, and not a local named time.
func TestImpurityCheck(t *testing.T) {
	const src = `package p

import (
	"math/rand/v2"
	t "time"
	. "time"
)

type clock struct{}

func (clock) Now() int { return 0 }

func f(r *rand.Rand, now t.Time) {
	go func() {}()            // 14
	_ = t.Now()               // 15: renamed import
	_ = rand.IntN(3)          // 16
	_ = Since(now)            // 17: dot import
	tick := t.Tick            // 18: a function value
	_ = tick
	var time clock
	_ = time.Now()            // fine: not package time
	_ = r.IntN(3)             // fine: handed-in source
	_ = now.Add(t.Second)     // fine
	_ = rand.New(rand.NewPCG(1, 2)) // fine: seeded
}
`
	var lines []int
	for _, p := range impurities(loadSource(t, src, "time", "math/rand/v2")) {
		lines = append(lines, p.pos.Line)
	}
	if want := []int{14, 15, 16, 17, 18}; !slices.Equal(lines, want) {
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
	var lines []int
	for _, p := range mapRanges(loadSource(t, src, "maps")) {
		lines = append(lines, p.Line)
	}
	if want := []int{8, 9, 10}; !slices.Equal(lines, want) {
		t.Fatalf("flagged lines %v, want %v", lines, want)
	}
}

// mapRanges returns the positions of p's unmarked range statements over
// maps or map iterators.
func mapRanges(p *pkg) []token.Position {
	var found []token.Position
	for _, f := range p.files {
		marked := map[int]bool{} // lines with, or right after, a // sorted: comment
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				if strings.HasPrefix(c.Text, "// sorted:") {
					line := p.fset.Position(c.Pos()).Line
					marked[line], marked[line+1] = true, true
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			rs, ok := n.(*ast.RangeStmt)
			if !ok || !overMap(rs.X, p.info) {
				return true
			}
			if pos := p.fset.Position(rs.For); !marked[pos.Line] {
				found = append(found, pos)
			}
			return true
		})
	}
	return found
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

// root is the module's root, module its path.
const (
	root   = "../.."
	module = "github.com/cosnim/relays"
)

// TestLayers: every package has a row in README's layout table, and no
// package's (non-test) imports reach a layer below its own.
func TestLayers(t *testing.T) {
	layers := readmeLayers(t)
	got := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		got[filepath.ToSlash(rel)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, dir := range slices.Sorted(maps.Keys(got)) {
		layer, ok := layers[dir]
		if !ok {
			t.Errorf("%s has no row in README's layout table", dir)
			continue
		}
		for _, imp := range projectImports(t, fset, filepath.Join(root, dir)) {
			if l, ok := layers[imp]; ok && l > layer {
				t.Errorf("%s (layer %d) imports %s (layer %d): an arrow up the house", dir, layer, imp, l)
			}
		}
	}
	for dir := range layers { // sorted: errors only
		if !got[dir] {
			t.Errorf("README's layout table lists %s, which holds no Go package", dir)
		}
	}
}

// readmeLayers reads README's layout table: package directory → layer.
func readmeLayers(t *testing.T) map[string]int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n### Layout\n")
	if !ok {
		t.Fatal("README has no Layout section")
	}
	table, _, _ = strings.Cut(table, "\n###")
	cell := regexp.MustCompile("`([a-z][a-z0-9/]*)`")
	out := map[string]int{}
	for _, line := range strings.Split(table, "\n") {
		f := strings.Split(line, "|")
		if len(f) < 4 {
			continue
		}
		var layer int
		if _, err := fmt.Sscanf(strings.TrimSpace(f[1]), "%d", &layer); err != nil {
			continue // the header
		}
		for _, m := range cell.FindAllStringSubmatch(f[2], -1) {
			out[strings.TrimSuffix(m[1], "/")] = layer
		}
	}
	if len(out) == 0 {
		t.Fatal("README's layout table lists no package")
	}
	return out
}

// projectImports lists, once each, the project packages dir's non-test
// files import, as directories from the module root.
func projectImports(t *testing.T, fset *token.FileSet, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if rel, ok := strings.CutPrefix(p, module+"/"); ok && !slices.Contains(out, rel) {
				out = append(out, rel)
			}
		}
	}
	return out
}
