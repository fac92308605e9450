package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"

	"github.com/cosnim/relays/internal/files"
	"github.com/cosnim/relays/relay"
)

// schema is the shape of a whole file, used to walk the YAML tree.
type schema struct {
	Relays      map[string]Relay      `mapstructure:"relays"`
	Continuum   Continuum             `mapstructure:"continuum"`
	CapsuleHubs map[string]CapsuleHub `mapstructure:"capsule_hubs"`
}

// sections is decoded in one go; relays are decoded one by one on top of Defaults.
type sections struct {
	Continuum   Continuum             `mapstructure:"continuum"`
	CapsuleHubs map[string]CapsuleHub `mapstructure:"capsule_hubs"`
}

// MaxNodes caps the YAML nodes one file may expand to: each node the
// decoder visits, counted again every time an alias (*name) leads to it,
// and each key a merge (<<) brings in. A node takes at least two bytes,
// so a file of files.MaxConfig without aliases stays under it; a "billion
// laughs" of aliases stops at the line where it crosses.
const MaxNodes = files.MaxConfig / 2

// decoder turns one file's bytes into a *File, collecting every problem.
type decoder struct {
	name  string         // file name for messages
	lines map[string]int // key path → line
	errs  Errors

	nodes  int                           // expanded so far, against MaxNodes
	alias  int                           // line of the outermost alias being followed, or 0
	merged map[*yaml.Node][][]*yaml.Node // mappingPairs of each mapping, once
}

// spend counts n expanded nodes at line; false once past MaxNodes (the
// first time, with an error at the alias being followed, else at line).
func (d *decoder) spend(n, line int) bool {
	if d.nodes > MaxNodes {
		return false
	}
	d.nodes += n
	if d.nodes > MaxNodes {
		if d.alias > 0 {
			line = d.alias
		}
		d.fail(line, "", newProblem(ErrTooManyNodes, "the file expands to more than %d YAML nodes through aliases (*name) and merge keys (<<); write the values out, or alias less", MaxNodes))
		return false
	}
	return true
}

func (d *decoder) fail(line int, path string, err error) {
	d.errs = append(d.errs, &Error{File: d.name, Line: line, Path: path, Err: err})
}

// failAt reports err at the line recorded for path, or at the nearest
// recorded parent.
func (d *decoder) failAt(path string, err error) {
	d.fail(d.lineOf(path), path, err)
}

func (d *decoder) lineOf(path string) int {
	for p := path; p != ""; {
		if l, ok := d.lines[p]; ok {
			return l
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// normalizeKey makes '-' and '_' equivalent in schema key names.
func normalizeKey(k string) string { return strings.ReplaceAll(k, "-", "_") }

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// parse decodes data into a File. Relays start from Defaults.
func (d *decoder) parse(data []byte) *File {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := 0, strings.TrimPrefix(err.Error(), "yaml: ")
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			line, msg = syntaxError(data, err)
		}
		d.fail(line, "", newProblem(ErrSyntax, "%s", msg))
		return nil
	}
	raw, _ := d.walk(&doc, reflect.TypeFor[schema](), "").(map[string]any)
	if len(d.errs) > 0 {
		return nil
	}

	f := &File{Relays: map[string]*Relay{}, lines: d.lines}
	relays, _ := raw["relays"].(map[string]any)
	delete(raw, "relays")
	var s sections
	d.decodeInto(raw, &s, "")
	f.Continuum, f.CapsuleHubs = s.Continuum, s.CapsuleHubs
	for _, name := range sortedKeys(relays) {
		r := Defaults()
		d.decodeInto(relays[name], &r, "relays["+name+"]")
		r.Name = name
		f.Relays[name] = &r
	}
	if len(d.errs) > 0 {
		return nil
	}
	return f
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// decodeInto runs mapstructure and maps its errors back to lines.
func (d *decoder) decodeInto(input any, out any, root string) {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:  mapstructure.ComposeDecodeHookFunc(durationHook, byteSizeHook),
		ErrorUnused: true,
		RootName:    root,
		Result:      out,
	})
	if err != nil {
		panic(err) // only for a bad DecoderConfig: a programming error
	}
	if err := dec.Decode(input); err != nil {
		d.mapDecodeError(err)
	}
}

// mapDecodeError reports each innermost mapstructure.DecodeError at its line.
func (d *decoder) mapDecodeError(err error) {
	var de *mapstructure.DecodeError
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range multi.Unwrap() {
			d.mapDecodeError(e)
		}
		return
	}
	if !errors.As(err, &de) {
		d.fail(0, "", newProblem(ErrInvalid, "%v", err))
		return
	}
	inner := de.Unwrap()
	var deeper *mapstructure.DecodeError
	if errors.As(inner, &deeper) {
		d.mapDecodeError(inner)
		return
	}
	path := decodeErrorPath(de.Name())
	var ute *mapstructure.UnconvertibleTypeError
	var p *problem
	switch {
	case errors.As(inner, &p):
		d.failAt(path, p)
	case errors.As(inner, &ute):
		d.failAt(path, newProblem(ErrWrongType, "expected %s, got %T", typeName(ute.Expected.Type()), ute.Value))
	default:
		d.failAt(path, newProblem(ErrInvalid, "%v", inner))
	}
}

// decodeErrorPath turns mapstructure's "relays[main].server.url" into "relays.main.server.url".
func decodeErrorPath(name string) string {
	r := strings.NewReplacer("[", ".", "]", "")
	return r.Replace(name)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
	limitsType   = reflect.TypeFor[relay.Config]() // server.limits, keyed by relay.Limits
)

func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	s, ok := data.(string)
	if !ok {
		return data, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return nil, newProblem(ErrWrongType, "expected %s: %v", typeName(durationType), err)
	}
	return d, nil
}

func byteSizeHook(from, to reflect.Type, data any) (any, error) {
	if to != byteSizeType {
		return data, nil
	}
	s, ok := data.(string)
	if !ok {
		return data, nil
	}
	b, err := ParseByteSize(s)
	if err != nil {
		return nil, newProblem(ErrWrongType, "expected %s: %v", typeName(byteSizeType), err)
	}
	return b, nil
}

// typeName names a Go type the way the file's author thinks of it.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration (like 15s or 100ms)"
	case t == byteSizeType:
		return "a byte size (like 1100 or 64KiB)"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(typeName(t.Elem()), "a "), "an ") + "s"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	}
	return t.String()
}

// describe names what a YAML node holds, for "expected X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing"
	case "!!int":
		return "the integer " + n.Value
	case "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	}
	return fmt.Sprintf("the string %q", n.Value)
}

// fieldsOf lists a struct's keys (mapstructure tags) and their types.
func fieldsOf(t reflect.Type) (names []string, types map[string]reflect.Type) {
	types = map[string]reflect.Type{}
	for f := range t.Fields() {
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "-" || tag == "" {
			continue
		}
		names = append(names, tag)
		types[tag] = f.Type
	}
	return names, types
}

// limitFields lists the keys of server.limits (relay.Limits) and the type
// each is written as.
func limitFields() (names []string, types map[string]reflect.Type) {
	types = map[string]reflect.Type{}
	for _, l := range relay.Limits() {
		names = append(names, l.Key)
		switch l.Unit {
		case relay.Duration:
			types[l.Key] = durationType
		case relay.Bytes:
			types[l.Key] = byteSizeType
		default:
			types[l.Key] = reflect.TypeFor[int64]()
		}
	}
	return names, types
}

// limits turns the walked server.limits mapping into a relay.Config on
// top of the defaults; mapstructure then sets it as a whole.
func (d *decoder) limits(raw map[string]any, path string) relay.Config {
	c := relay.DefaultConfig()
	for _, l := range relay.Limits() {
		p := joinPath(path, l.Key)
		var v int64
		var err error
		switch x := raw[l.Key].(type) {
		case nil:
			continue // absent, null or already reported
		case int64:
			v = x
		case string:
			if l.Unit == relay.Duration {
				var dur time.Duration
				dur, err = ParseDuration(x)
				v = int64(dur)
			} else {
				var b ByteSize
				b, err = ParseByteSize(x)
				v = int64(b)
			}
		}
		if err != nil {
			t := durationType
			if l.Unit == relay.Bytes {
				t = byteSizeType
			}
			d.failAt(p, newProblem(ErrWrongType, "expected %s: %v", typeName(t), err))
			continue
		}
		l.Set(&c, v)
	}
	return c
}

// walk converts n into plain values (map[string]any, []any, strings and
// numbers) shaped like t, recording key lines and reporting unknown keys,
// duplicates and kind mismatches. Key names of structs are normalised.
func (d *decoder) walk(n *yaml.Node, t reflect.Type, path string) any {
	if !d.spend(1, n.Line) {
		return nil
	}
	if n.Kind == yaml.AliasNode && d.alias == 0 {
		d.alias = n.Line // the outermost alias names the expansion
		defer func() { d.alias = 0 }()
	}
	for n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		} else {
			n = n.Alias
		}
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if t == relayRefType {
		if v, ok := d.walkRelayRef(n, path); ok {
			return v
		}
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		return d.walkStruct(n, t, path)
	case t.Kind() == reflect.Map:
		return d.walkMap(n, t, path)
	case t.Kind() == reflect.Slice:
		return d.walkSlice(n, t, path)
	}
	return d.walkScalar(n, t, path)
}

// wrongKind reports that n is not the t expected at path.
func (d *decoder) wrongKind(n *yaml.Node, t reflect.Type, path string) {
	d.fail(n.Line, path, newProblem(ErrWrongType, "expected %s, got %s", typeName(t), describe(n)))
}

// walkStruct walks a mapping into the fields of struct t: key names are
// normalised, unknown and repeated keys reported.
func (d *decoder) walkStruct(n *yaml.Node, t reflect.Type, path string) any {
	if n.Kind != yaml.MappingNode {
		d.wrongKind(n, t, path)
		return nil
	}
	names, types := fieldsOf(t)
	if t == limitsType {
		names, types = limitFields()
	}
	out := map[string]any{}
	seen := map[string]int{}
	for _, kv := range d.mappingPairs(n) {
		k, v := kv[0], kv[1]
		key := normalizeKey(k.Value)
		p := joinPath(path, key)
		ft, ok := types[key]
		switch {
		case !ok:
			d.fail(k.Line, joinPath(path, k.Value), unknownKey(k.Value, names))
			continue
		case seen[key] != 0 && !isMerged(kv):
			d.fail(k.Line, p, newProblem(ErrDuplicateKey, "key %q set again (first set at line %d)", k.Value, seen[key]))
			continue
		}
		seen[key] = k.Line
		d.lines[p] = k.Line
		out[key] = d.walk(v, ft, p)
	}
	if t == limitsType {
		return d.limits(out, path)
	}
	return out
}

// walkMap walks a mapping of user-chosen names (relays, for one).
func (d *decoder) walkMap(n *yaml.Node, t reflect.Type, path string) any {
	if n.Kind != yaml.MappingNode {
		d.wrongKind(n, t, path)
		return nil
	}
	out := map[string]any{}
	for _, kv := range d.mappingPairs(n) {
		k, v := kv[0], kv[1]
		p := joinPath(path, k.Value)
		if l, dup := d.lines[p]; dup && !isMerged(kv) {
			d.fail(k.Line, p, newProblem(ErrDuplicateKey, "name %q defined again (first at line %d)", k.Value, l))
			continue
		}
		d.lines[p] = k.Line
		out[k.Value] = d.walk(v, t.Elem(), p)
	}
	return out
}

// walkSlice walks a sequence, each element at its index's path.
func (d *decoder) walkSlice(n *yaml.Node, t reflect.Type, path string) any {
	if n.Kind != yaml.SequenceNode {
		d.wrongKind(n, t, path)
		return nil
	}
	out := make([]any, len(n.Content))
	for i, c := range n.Content {
		p := joinPath(path, fmt.Sprint(i))
		d.lines[p] = c.Line
		out[i] = d.walk(c, t.Elem(), p)
	}
	return out
}

// walkScalar walks a scalar: durations and byte sizes stay strings (the
// limits parse them), integers and booleans must be tagged as such.
func (d *decoder) walkScalar(n *yaml.Node, t reflect.Type, path string) any {
	if n.Kind != yaml.ScalarNode {
		d.wrongKind(n, t, path)
		return nil
	}
	d.lines[path] = n.Line
	switch {
	case t == durationType, t == byteSizeType, t.Kind() == reflect.String:
		return n.Value
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		var i int64
		if n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.wrongKind(n, t, path)
			return nil
		}
		return i
	case t.Kind() == reflect.Bool:
		var b bool
		if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.wrongKind(n, t, path)
			return nil
		}
		return b
	}
	var v any
	if err := n.Decode(&v); err != nil {
		d.fail(n.Line, path, newProblem(ErrWrongType, "%v", err))
	}
	return v
}

// mappingPairs lists a mapping's key/value nodes, expanding YAML merge
// keys ("<<: *base", "<<: [*a, *b]") first so that the mapping's own keys
// override them; of several merged mappings the earlier wins, as YAML
// says. A merged pair is marked by a third element (the merge key node).
//
// Each mapping is expanded once (the result is kept), and a merged key
// already present is not added again, so a mapping holds at most as many
// pairs as the file has distinct keys: merging one alias many times, or a
// chain of merges of merges, costs no more than merging it once.
func (d *decoder) mappingPairs(n *yaml.Node) [][]*yaml.Node {
	if pairs, ok := d.merged[n]; ok {
		return pairs
	}
	var merged, own [][]*yaml.Node
	have := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() != "!!merge" {
			own = append(own, []*yaml.Node{k, v})
			have[normalizeKey(k.Value)] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() != "!!merge" {
			continue
		}
		srcs := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, s := range srcs {
			if !d.spend(1, s.Line) {
				return nil
			}
			for s.Kind == yaml.AliasNode {
				s = s.Alias
			}
			if s.Kind != yaml.MappingNode {
				continue
			}
			pairs := d.mappingPairs(s)
			if !d.spend(len(pairs), s.Line) {
				return nil
			}
			for _, kv := range pairs {
				if key := normalizeKey(kv[0].Value); !have[key] {
					have[key] = true
					merged = append(merged, []*yaml.Node{kv[0], kv[1], k})
				}
			}
		}
	}
	out := append(merged, own...)
	if d.merged == nil {
		d.merged = map[*yaml.Node][][]*yaml.Node{}
	}
	d.merged[n] = out
	return out
}

func isMerged(kv []*yaml.Node) bool { return len(kv) == 3 }
