// Package emitted finds every metric the functions emit, by reading the module's source with
// the Go type checker: each call of (*observe.Metrics).Count, Millis or Add, its metric name
// and its dimensions, and which functions (functions/<name>) link the package that makes it.
//
// The template test holds every alarm and dashboard widget to this list, so a widget is never
// silently empty because a metric was renamed or lost a dimension. Calls are found through the
// type checker, not by matching text: a metrics collector held in any variable, a method value
// or an alias is still a *observe.Metrics. The rule it imposes on code is small: metric names
// and dimension names are constants, dimensions are observe.D(...) or observe.Dim{...}
// arguments; anything else is reported as a call it cannot read.
package emitted

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

const observePath = "github.com/cxbridge/cxbridge/pkg/observe"

// Any is the value of a dimension the code computes at run time.
const Any = "*"

// Emission is one call that records a metric.
type Emission struct {
	Name      string
	Dims      map[string]string // the call's own dimensions: name -> constant value, or Any
	Package   string
	Pos       string   // file:line
	Functions []string // functions/<name> directories that link the package, sorted
}

// Set is every emission of a module.
type Set struct {
	Emissions []Emission
	// BaseDims are the dimensions observe.Wrap adds to every metric of a function invocation.
	BaseDims []string
}

// Scan reads the module at root (which holds go.mod). It runs `go list`, so the go command
// and the build cache are used.
func Scan(root string) (*Set, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	pkgs, err := list(root, "-deps", "-export", "./...")
	if err != nil {
		return nil, err
	}
	module := ""
	exports := map[string]string{}
	for _, p := range pkgs {
		exports[p.ImportPath] = p.Export
		if p.Module != nil && p.Module.Main {
			module = p.Module.Path
		}
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	linkedBy, err := functionsLinking(root, module)
	if err != nil {
		return nil, err
	}
	set := &Set{BaseDims: []string{"Service", "Function"}}
	var problems []string
	for _, p := range pkgs {
		if p.Module == nil || !p.Module.Main || p.Standard {
			continue
		}
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				return nil, err
			}
			files = append(files, f)
		}
		info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}, Selections: map[*ast.SelectorExpr]*types.Selection{}}
		conf := types.Config{Importer: imp}
		if _, err := conf.Check(p.ImportPath, fset, files, info); err != nil {
			return nil, fmt.Errorf("type-check %s: %w", p.ImportPath, err)
		}
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				e, ok, problem := emission(info, call)
				if problem != "" && p.ImportPath == observePath {
					problem = "" // Count and Millis forwarding to Add
				}
				if problem != "" {
					problems = append(problems, fset.Position(call.Pos()).String()+": "+problem)
				}
				if ok {
					pos := fset.Position(call.Pos())
					rel, _ := filepath.Rel(root, pos.Filename)
					e.Package, e.Pos, e.Functions = p.ImportPath, fmt.Sprintf("%s:%d", filepath.ToSlash(rel), pos.Line), linkedBy[p.ImportPath]
					set.Emissions = append(set.Emissions, e)
				}
				return true
			})
		}
	}
	if len(problems) > 0 {
		return set, fmt.Errorf("metrics the scan cannot read (use constant names and observe.D dimensions):\n%s", strings.Join(problems, "\n"))
	}
	sort.Slice(set.Emissions, func(i, j int) bool { return set.Emissions[i].Pos < set.Emissions[j].Pos })
	return set, nil
}

// emission reads one call; ok is false when it is not a call of a *observe.Metrics method that
// records a metric.
func emission(info *types.Info, call *ast.CallExpr) (e Emission, ok bool, problem string) {
	sel, isSel := call.Fun.(*ast.SelectorExpr)
	if !isSel {
		return e, false, ""
	}
	s := info.Selections[sel]
	if s == nil || s.Kind() != types.MethodVal {
		return e, false, ""
	}
	fn, _ := s.Obj().(*types.Func)
	if fn == nil || fn.Pkg() == nil || fn.Pkg().Path() != observePath || !isMetrics(s.Recv()) {
		return e, false, ""
	}
	first := map[string]int{"Count": 2, "Millis": 2, "Add": 3}[fn.Name()] // where the dimensions start
	if first == 0 || len(call.Args) == 0 {
		return e, false, ""
	}
	name, isConst := constString(info, call.Args[0])
	if !isConst {
		return e, false, "the metric name is not a constant"
	}
	e = Emission{Name: name, Dims: map[string]string{}}
	if call.Ellipsis.IsValid() {
		return e, false, "dimensions passed as a slice (...)"
	}
	for _, arg := range call.Args[min(first, len(call.Args)):] {
		dn, dv, problem := dimension(info, arg)
		if problem != "" {
			return e, false, problem
		}
		e.Dims[dn] = dv
	}
	return e, true, ""
}

func isMetrics(t types.Type) bool {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	n, ok := types.Unalias(t).(*types.Named)
	return ok && n.Obj().Name() == "Metrics" && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == observePath
}

// dimension reads observe.D("Name", value) or observe.Dim{"Name", value} / {Name: ..., Value: ...}.
func dimension(info *types.Info, arg ast.Expr) (name, value, problem string) {
	var nameExpr, valueExpr ast.Expr
	switch x := ast.Unparen(arg).(type) {
	case *ast.CallExpr:
		id := calleeIdent(x.Fun)
		if fn, ok := info.Uses[id].(*types.Func); !ok || fn.Pkg() == nil || fn.Pkg().Path() != observePath || fn.Name() != "D" || len(x.Args) != 2 {
			return "", "", "a dimension that is not observe.D(name, value)"
		}
		nameExpr, valueExpr = x.Args[0], x.Args[1]
	case *ast.CompositeLit:
		for i, el := range x.Elts {
			if kv, ok := el.(*ast.KeyValueExpr); ok {
				switch fmt.Sprint(kv.Key) {
				case "Name":
					nameExpr = kv.Value
				case "Value":
					valueExpr = kv.Value
				}
			} else if i == 0 {
				nameExpr = el
			} else if i == 1 {
				valueExpr = el
			}
		}
	default:
		return "", "", "a dimension that is not observe.D(name, value)"
	}
	name, ok := constString(info, nameExpr)
	if !ok {
		return "", "", "a dimension name that is not a constant"
	}
	value = Any
	if v, ok := constString(info, valueExpr); ok {
		value = v
	}
	return name, value, ""
}

func calleeIdent(e ast.Expr) *ast.Ident {
	switch x := e.(type) {
	case *ast.Ident:
		return x
	case *ast.SelectorExpr:
		return x.Sel
	}
	return nil
}

func constString(info *types.Info, e ast.Expr) (string, bool) {
	if e == nil {
		return "", false
	}
	tv, ok := info.Types[e]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.String {
		return "", false
	}
	return constant.StringVal(tv.Value), true
}

type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Export     string
	Standard   bool
	Deps       []string
	Module     *struct {
		Path string
		Main bool
	}
}

func list(root string, args ...string) ([]pkg, error) {
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Dir,GoFiles,Export,Standard,Deps,Module"}, args...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v: %s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// functionsLinking maps each package of the module to the functions (functions/<dir>) whose
// binary contains it.
func functionsLinking(root, module string) (map[string][]string, error) {
	mains, err := list(root, "./functions/...")
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, m := range mains {
		fn := filepath.Base(m.Dir)
		for _, d := range append(m.Deps, m.ImportPath) {
			if strings.HasPrefix(d, module+"/") && !slices.Contains(out[d], fn) {
				out[d] = append(out[d], fn)
			}
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out, nil
}

// Find returns the emissions of a metric with exactly the given dimension names (besides the
// base dimensions), emitted by function (any function when "").
func (s *Set) Find(name string, dims []string, function string) []Emission {
	var out []Emission
	for _, e := range s.Emissions {
		if e.Name != name || (function != "" && !slices.Contains(e.Functions, function)) || len(e.Functions) == 0 {
			continue
		}
		own := make([]string, 0, len(e.Dims))
		for d := range e.Dims {
			own = append(own, d)
		}
		if sameSet(append(own, s.BaseDims...), dims) {
			out = append(out, e)
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Compact(slices.Sorted(slices.Values(a))), slices.Compact(slices.Sorted(slices.Values(b)))
	return slices.Equal(a, b)
}
