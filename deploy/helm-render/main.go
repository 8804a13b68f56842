// helm-render renders a Helm chart the way `helm template` does, for the subset of Helm the
// image-interpreter chart uses, so the chart can be checked on a machine without the helm binary
// (it builds offline from Debian's Go packages; see README.md).
//
//	helm-render [flags] [RELEASE] CHART_DIR
//	  -f, --values FILE        values file merged over values.yaml (repeatable, later wins)
//	  --set a.b=c[,d=e]        value override (repeatable; true/false/null/integers are typed)
//	  --set-string a.b=c       value override kept as a string
//	  -n, --namespace NS       .Release.Namespace (default "default")
//	  --kube-version V         .Capabilities.KubeVersion (default v1.29.0)
//	  -a, --api-versions G/V   extra .Capabilities.APIVersions (repeatable)
//	  --show-values            print the merged values as YAML instead of the manifests
//	  -o, --output yaml|json   json: the manifests as one JSON array of objects (for checkers)
//
// What it does like Helm: values.yaml merged with -f files then --set (null deletes a key),
// values.schema.json checked (the JSON-schema keywords listed in schema.go), every
// templates/*.yaml|*.yml|*.tpl|*.txt parsed into one template set with sprig's TxtFuncMap plus
// include, tpl, toYaml, fromYaml, toJson, required and fail, then every template whose name does
// not start with "_" executed and written as multi-document YAML ("# Source:" comments, empty
// documents dropped; NOTES.txt is not a manifest and is left out like `helm template` does).
// .Files holds every chart file outside templates/ and charts/ (symlinks followed, as Helm's
// loader does). Dependencies in Chart.yaml are honoured through their `condition`: a disabled one
// is skipped; an enabled one fails, because subcharts are not rendered here (use helm for them).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type options struct {
	release     string
	namespace   string
	chartDir    string
	valueFiles  []string
	sets        []string
	setStrings  []string
	kubeVersion string
	apiVersions []string
	showValues  bool
	output      string
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: helm-render [-f values.yaml]... [--set a.b=c]... [-n NAMESPACE] "+
		"[--kube-version v1.29.0] [-a group/version]... [--show-values] [-o yaml|json] "+
		"[RELEASE] CHART_DIR")
}

func parseArgs(args []string) (options, error) {
	opts := options{release: "release-name", namespace: "default", kubeVersion: "v1.29.0",
		output: "yaml"}
	var positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue := strings.Cut(arg, "=")
		needValue := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value", name)
			}
			i++
			return args[i], nil
		}
		var err error
		var v string
		switch name {
		case "-f", "--values":
			v, err = needValue()
			opts.valueFiles = append(opts.valueFiles, v)
		case "--set":
			v, err = needValue()
			opts.sets = append(opts.sets, v)
		case "--set-string":
			v, err = needValue()
			opts.setStrings = append(opts.setStrings, v)
		case "-n", "--namespace":
			opts.namespace, err = needValue()
		case "--kube-version":
			opts.kubeVersion, err = needValue()
		case "-a", "--api-versions":
			v, err = needValue()
			opts.apiVersions = append(opts.apiVersions, v)
		case "-o", "--output":
			opts.output, err = needValue()
			if err == nil && opts.output != "yaml" && opts.output != "json" {
				err = fmt.Errorf("--output must be yaml or json, not %q", opts.output)
			}
		case "--show-values":
			opts.showValues = true
		case "-h", "--help":
			usage(os.Stdout)
			os.Exit(0)
		default:
			if strings.HasPrefix(arg, "-") {
				return opts, fmt.Errorf("unknown flag %s", arg)
			}
			positional = append(positional, arg)
		}
		if err != nil {
			return opts, err
		}
	}
	switch len(positional) {
	case 1:
		opts.chartDir = positional[0]
	case 2:
		opts.release, opts.chartDir = positional[0], positional[1]
	default:
		return opts, errors.New("expected [RELEASE] CHART_DIR")
	}
	return opts, nil
}

func main() {
	opts, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		usage(os.Stderr)
		os.Exit(2)
	}
	out, err := render(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

// render returns the manifests (or with --show-values the merged values) as YAML.
func render(opts options) ([]byte, error) {
	chart, err := loadChart(opts.chartDir)
	if err != nil {
		return nil, err
	}
	values, err := mergedValues(chart, opts)
	if err != nil {
		return nil, err
	}
	if chart.schema != nil {
		if errs := validateSchema(chart.schema, values, "values"); len(errs) > 0 {
			return nil, fmt.Errorf("values don't meet the specifications of the schema(s) in the "+
				"following chart(s):\n%s:\n- %s", chart.name(), strings.Join(errs, "\n- "))
		}
	}
	if opts.showValues {
		if opts.output == "json" {
			out, err := json.MarshalIndent(values, "", "  ")
			return append(out, '\n'), err
		}
		return toYAMLBytes(values)
	}
	if err := checkDependencies(chart, values); err != nil {
		return nil, err
	}
	manifests, err := renderTemplates(chart, values, opts)
	if err != nil || opts.output != "json" {
		return manifests, err
	}
	return manifestsAsJSON(manifests)
}

// manifestsAsJSON parses rendered multi-document YAML (which also proves it is YAML) into one
// JSON array of objects.
func manifestsAsJSON(manifests []byte) ([]byte, error) {
	objects := []interface{}{}
	dec := yaml.NewDecoder(bytes.NewReader(manifests))
	for {
		var doc interface{}
		err := dec.Decode(&doc)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("rendered manifests are not valid YAML: %w", err)
		}
		if doc != nil {
			objects = append(objects, normalize(doc))
		}
	}
	out, err := json.MarshalIndent(objects, "", "  ")
	return append(out, '\n'), err
}

func mergedValues(chart *chartDir, opts options) (map[string]interface{}, error) {
	values := deepCopy(chart.values).(map[string]interface{})
	for _, file := range opts.valueFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		override, err := parseYAMLMap(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		mergeInto(values, override)
	}
	for _, set := range opts.sets {
		if err := applySet(values, set, true); err != nil {
			return nil, err
		}
	}
	for _, set := range opts.setStrings {
		if err := applySet(values, set, false); err != nil {
			return nil, err
		}
	}
	return values, nil
}

// checkDependencies mirrors Helm's condition handling for Chart.yaml dependencies.
func checkDependencies(chart *chartDir, values map[string]interface{}) error {
	deps, _ := chart.metadata["dependencies"].([]interface{})
	for _, d := range deps {
		dep, _ := d.(map[string]interface{})
		name, _ := dep["name"].(string)
		enabled := true
		if cond, ok := dep["condition"].(string); ok && cond != "" {
			for _, c := range strings.Split(cond, ",") {
				if v, found := lookupPath(values, strings.TrimSpace(c)); found {
					b, isBool := v.(bool)
					enabled = isBool && b
					break
				}
			}
		}
		if enabled {
			return fmt.Errorf("dependency %q is enabled (condition %v), but helm-render does not "+
				"render subcharts; run `helm dependency build` and render with helm", name,
				dep["condition"])
		}
	}
	return nil
}

// ----- chart loading -----

type chartDir struct {
	dir       string
	metadata  map[string]interface{}
	values    map[string]interface{}
	schema    map[string]interface{}
	templates map[string]string // "templates/x.yaml" -> text
	files     map[string][]byte // .Files
}

func (c *chartDir) name() string { s, _ := c.metadata["name"].(string); return s }

func loadChart(dir string) (*chartDir, error) {
	c := &chartDir{dir: dir, templates: map[string]string{}, files: map[string][]byte{}}
	meta, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("not a chart folder: %w", err)
	}
	if c.metadata, err = parseYAMLMap(meta); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	for _, key := range []string{"apiVersion", "name", "version"} {
		if _, ok := c.metadata[key]; !ok {
			return nil, fmt.Errorf("Chart.yaml: %s is required", key)
		}
	}
	c.values = map[string]interface{}{}
	if data, err := os.ReadFile(filepath.Join(dir, "values.yaml")); err == nil {
		if c.values, err = parseYAMLMap(data); err != nil {
			return nil, fmt.Errorf("values.yaml: %w", err)
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, "values.schema.json")); err == nil {
		// JSON is YAML; yaml.v3 keeps integers as int, which the schema checks expect.
		if c.schema, err = parseYAMLMap(data); err != nil {
			return nil, fmt.Errorf("values.schema.json: %w", err)
		}
	}
	err = walkFollowingSymlinks(dir, "", func(rel string, data []byte) {
		switch {
		case strings.HasPrefix(rel, "templates/"):
			c.templates[rel] = string(data)
		case strings.HasPrefix(rel, "charts/"), rel == "Chart.yaml", rel == "Chart.lock",
			rel == "values.yaml", rel == "values.schema.json", rel == ".helmignore":
		default:
			c.files[rel] = data
		}
	})
	return c, err
}

// walkFollowingSymlinks calls visit for every regular file under root (symlinked files and
// folders followed, as Helm's chart loader does), with slash-separated relative paths.
func walkFollowingSymlinks(root, rel string, visit func(string, []byte)) error {
	entries, err := os.ReadDir(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	for _, e := range entries {
		childRel := path.Join(rel, e.Name())
		full := filepath.Join(root, childRel)
		info, err := os.Stat(full) // follows symlinks
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		if info.IsDir() {
			if err := walkFollowingSymlinks(root, childRel, visit); err != nil {
				return err
			}
			continue
		}
		data, err := os.ReadFile(full)
		if err != nil {
			return err
		}
		visit(childRel, data)
	}
	return nil
}

// ----- values -----

func parseYAMLMap(data []byte) (map[string]interface{}, error) {
	var out map[string]interface{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = map[string]interface{}{}
	}
	return normalize(out).(map[string]interface{}), nil
}

// normalize turns yaml.v3's map[interface{}]interface{} (non-string keys) into string maps.
func normalize(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		for k, x := range t {
			t[k] = normalize(x)
		}
		return t
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = normalize(x)
		}
		return m
	case []interface{}:
		for i, x := range t {
			t[i] = normalize(x)
		}
		return t
	}
	return v
}

func deepCopy(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []interface{}:
		s := make([]interface{}, len(t))
		for i, x := range t {
			s[i] = deepCopy(x)
		}
		return s
	}
	return v
}

// mergeInto merges src over dst like Helm: maps merge recursively, anything else replaces, and
// null deletes the key.
func mergeInto(dst, src map[string]interface{}) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		srcMap, srcIsMap := v.(map[string]interface{})
		dstMap, dstIsMap := dst[k].(map[string]interface{})
		if srcIsMap && dstIsMap {
			mergeInto(dstMap, srcMap)
		} else {
			dst[k] = deepCopy(v)
		}
	}
}

var setIndex = regexp.MustCompile(`^(.*)\[(\d+)\]$`)

// applySet applies one --set argument: comma-separated key=value pairs, keys dotted
// (a.b.c, list[0].x); backslash escapes a dot or comma.
func applySet(values map[string]interface{}, arg string, typed bool) error {
	for _, pair := range splitUnescaped(arg, ',') {
		key, raw, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("--set %q: expected key=value", pair)
		}
		var value interface{} = raw
		if typed {
			value = typedValue(raw)
		}
		parts := splitUnescaped(key, '.')
		var cur interface{} = values
		for i, part := range parts {
			last := i == len(parts)-1
			idx := -1
			if m := setIndex.FindStringSubmatch(part); m != nil {
				part = m[1]
				idx, _ = strconv.Atoi(m[2])
			}
			parent, ok := cur.(map[string]interface{})
			if !ok {
				return fmt.Errorf("--set %s: %s is not a map", key, strings.Join(parts[:i], "."))
			}
			if idx < 0 {
				if last {
					if value == nil {
						delete(parent, part)
					} else {
						parent[part] = value
					}
					break
				}
				if _, isMap := parent[part].(map[string]interface{}); !isMap {
					parent[part] = map[string]interface{}{}
				}
				cur = parent[part]
				continue
			}
			list, _ := parent[part].([]interface{})
			for len(list) <= idx {
				list = append(list, nil)
			}
			parent[part] = list
			if last {
				list[idx] = value
				break
			}
			if _, isMap := list[idx].(map[string]interface{}); !isMap {
				list[idx] = map[string]interface{}{}
			}
			cur = list[idx]
		}
	}
	return nil
}

func splitUnescaped(s string, sep rune) []string {
	var parts []string
	var cur strings.Builder
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped = true
		case r == sep:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(parts, cur.String())
}

func typedValue(raw string) interface{} {
	switch raw {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil && (raw == "0" || raw[0] != '0') {
		return int(n)
	}
	return raw
}

func lookupPath(values map[string]interface{}, dotted string) (interface{}, bool) {
	var cur interface{} = values
	for _, part := range strings.Split(dotted, ".") {
		m, ok := cur.(map[string]interface{})
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// ----- template functions -----

func toYAMLBytes(v interface{}) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	enc.Close()
	return buf.Bytes(), nil
}

// toYaml is Helm's: YAML without the trailing newline; errors become "".
func toYaml(v interface{}) string {
	data, err := toYAMLBytes(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

// fromYaml is Helm's: a map, or a map with "Error" when the text is no YAML mapping.
func fromYaml(s string) map[string]interface{} {
	m, err := parseYAMLMap([]byte(s))
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func required(msg string, v interface{}) (interface{}, error) {
	if v == nil {
		return nil, errors.New(msg)
	}
	if s, ok := v.(string); ok && s == "" {
		return nil, errors.New(msg)
	}
	return v, nil
}

func fail(msg string) (string, error) { return "", errors.New(msg) }

// Files is .Files: chart files outside templates/ keyed by slash-separated path.
type Files map[string][]byte

func (f Files) Get(name string) string { return string(f[name]) }

func (f Files) GetBytes(name string) []byte { return f[name] }

// Glob matches like Helm's (gobwas/glob with '/' as separator): * and ? stay within a path
// segment, ** crosses them.
func (f Files) Glob(pattern string) Files {
	re := globRegexp(pattern)
	out := Files{}
	for name, data := range f {
		if re.MatchString(name) {
			out[name] = data
		}
	}
	return out
}

// AsConfig renders the files as ConfigMap data (base name -> content), sorted by name.
func (f Files) AsConfig() string {
	if len(f) == 0 {
		return ""
	}
	m := map[string]string{}
	for name, data := range f {
		m[path.Base(name)] = string(data)
	}
	return toYaml(m)
}

func (f Files) Lines(name string) []string {
	s := strings.TrimSuffix(string(f[name]), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func globRegexp(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '*' && i+1 < len(pattern) && pattern[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// APIVersions is .Capabilities.APIVersions.
type APIVersions []string

func (a APIVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

// builtinAPIVersions are the group/versions (and group/version/Kind) of a plain cluster.
var builtinAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2", "policy/v1",
	"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
	"apps/v1/Deployment", "apps/v1/StatefulSet", "v1/Service", "v1/ConfigMap",
	"v1/PersistentVolumeClaim", "autoscaling/v2/HorizontalPodAutoscaler",
}

// ----- rendering -----

func renderTemplates(chart *chartDir, values map[string]interface{}, opts options) ([]byte, error) {
	kube := strings.TrimPrefix(opts.kubeVersion, "v")
	major, rest, _ := strings.Cut(kube, ".")
	minor, _, _ := strings.Cut(rest, ".")
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": opts.release, "Namespace": opts.namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Chart": map[string]interface{}{
			"Name": chart.name(), "Version": chart.metadata["version"],
			"AppVersion": chart.metadata["appVersion"], "Description": chart.metadata["description"],
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{
				"Version": "v" + kube, "GitVersion": "v" + kube, "Major": major, "Minor": minor,
			},
			"APIVersions": APIVersions(append(append([]string{}, builtinAPIVersions...),
				opts.apiVersions...)),
		},
		"Files": Files(chart.files),
	}

	root := template.New("chart")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env") // Helm removes these two: a chart must not depend on the machine
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYaml
	funcs["fromYaml"] = fromYaml
	funcs["required"] = required
	funcs["fail"] = fail
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err := clone.New("tpl").Parse(text)
		if err != nil {
			return "", fmt.Errorf("tpl: %w", err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	root.Funcs(funcs).Option("missingkey=zero")

	names := make([]string, 0, len(chart.templates))
	for name := range chart.templates {
		names = append(names, name)
	}
	sort.Strings(names)
	chartName := chart.name()
	for _, name := range names {
		full := chartName + "/" + name
		if _, err := root.New(full).Parse(chart.templates[name]); err != nil {
			return nil, fmt.Errorf("parse error in %s: %w", full, err)
		}
	}

	var out bytes.Buffer
	for _, name := range names {
		ext := path.Ext(name)
		if strings.HasPrefix(path.Base(name), "_") || name == "templates/NOTES.txt" ||
			(ext != ".yaml" && ext != ".yml" && ext != ".tpl" && ext != ".txt") {
			continue
		}
		full := chartName + "/" + name
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, top); err != nil {
			return nil, fmt.Errorf("execution error at (%s): %w", full, cleanExecError(err))
		}
		rendered := strings.ReplaceAll(buf.String(), "<no value>", "")
		for _, doc := range splitDocuments(rendered) {
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", full, doc)
		}
	}
	return out.Bytes(), nil
}

// cleanExecError keeps the innermost message of nested include/tpl errors, as Helm does.
func cleanExecError(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "error calling "); i >= 0 {
		if j := strings.Index(msg[i:], ": "); j >= 0 {
			return errors.New(msg[i+j+2:])
		}
	}
	return err
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitDocuments splits on YAML document separators and drops documents that hold only comments
// and whitespace.
func splitDocuments(s string) []string {
	var docs []string
	for _, doc := range docSeparator.Split(s, -1) {
		empty := true
		for _, line := range strings.Split(doc, "\n") {
			t := strings.TrimSpace(line)
			if t != "" && !strings.HasPrefix(t, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, strings.Trim(doc, "\n"))
		}
	}
	return docs
}
