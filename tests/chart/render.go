// render: a stand-in for `helm template`, for machines where Helm cannot be installed.
//
// It renders one chart (no subcharts, no hooks) the way Helm 3's engine does: values.yaml
// coalesced with -f files and --set/--set-string overrides; .Values .Release .Chart
// .Capabilities .Template .Files; sprig's functions (minus env/expandenv, as in Helm)
// plus Helm's include, tpl, required, toYaml, fromYaml, fromYamlArray, toJson, fromJson,
// fromJsonArray and lookup; missingkey=zero and "<no value>" erased; every template under
// templates/ parsed into one set named "<chart>/templates/<file>", those whose base name
// starts with "_" not rendered; documents printed in Helm's install order with
// "# Source:" headers. Like Helm, values read from YAML go through JSON, so every number
// from a file is a float64 (print big ones through int64 or toYaml) and --set integers are
// int64.
//
// What it does not do: schema validation (tests/chart/helm.py does it with jsonschema on
// the values this program writes with --values-out), subcharts, hooks, .helmignore.
// lookup answers from the objects in --lookup FILE (a multi-document YAML standing in for
// the cluster), or with an empty map, as `helm template` does.
//
// Built in GOPATH mode against Debian's golang-github-masterminds-sprig-dev and
// golang-gopkg-yaml.v2-dev; see tests/chart/helm.py.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v2"
)

// ---- values -----------------------------------------------------------------------

// jsonNormalize turns what yaml.v2 produced (map[interface{}]interface{}, ints) into what
// sigs.k8s.io/yaml gives Helm: map[string]interface{}, float64 numbers.
func jsonNormalize(v interface{}) (interface{}, error) {
	conv, err := stringKeys(v)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(conv)
	if err != nil {
		return nil, err
	}
	var out interface{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func stringKeys(v interface{}) (interface{}, error) {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			c, err := stringKeys(val)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = c
		}
		return m, nil
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			c, err := stringKeys(val)
			if err != nil {
				return nil, err
			}
			m[k] = c
		}
		return m, nil
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, val := range t {
			c, err := stringKeys(val)
			if err != nil {
				return nil, err
			}
			l[i] = c
		}
		return l, nil
	default:
		return v, nil
	}
}

// yamlToMap parses one YAML document into a JSON-typed map (empty document: empty map).
func yamlToMap(data []byte) (map[string]interface{}, error) {
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	n, err := jsonNormalize(raw)
	if err != nil {
		return nil, err
	}
	m, ok := n.(map[string]interface{})
	if !ok {
		return nil, errors.New("top level is not a mapping")
	}
	return m, nil
}

// mergeMaps: b wins over a, maps merged deeply (Helm's mergeMaps for -f and --set).
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if om, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeMaps(om, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// coalesce: user values over chart defaults; a user null deletes the default (Helm).
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(defaults))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range user {
		if v == nil {
			delete(out, k)
			continue
		}
		um, uok := v.(map[string]interface{})
		dm, dok := out[k].(map[string]interface{})
		if uok && dok {
			out[k] = coalesce(um, dm)
		} else {
			out[k] = v
		}
	}
	return out
}

// ---- --set (a subset of Helm's strvals: a.b=c, a[0]=x, a={x,y}, "\," escapes) --------

var intRe = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)$`)

func typedValue(s string, asString bool) interface{} {
	if asString {
		return s
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if intRe.MatchString(s) {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return s
}

// splitUnescaped splits s on sep outside {} and not preceded by a backslash, and
// removes the escaping backslashes of sep.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	var cur strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == sep:
			cur.WriteByte(sep)
			i++
		case c == '{':
			depth++
			cur.WriteByte(c)
		case c == '}':
			depth--
			cur.WriteByte(c)
		case c == sep && depth == 0:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

var indexRe = regexp.MustCompile(`^(.*)\[([0-9]+)\]$`)

func setPath(m map[string]interface{}, keys []string, val interface{}) error {
	k := keys[0]
	idx := -1
	if sm := indexRe.FindStringSubmatch(k); sm != nil {
		k = sm[1]
		idx, _ = strconv.Atoi(sm[2])
		if idx > 65536 {
			return fmt.Errorf("index %d too large", idx)
		}
	}
	if k == "" {
		return errors.New("empty key")
	}
	if idx >= 0 {
		list, _ := m[k].([]interface{})
		for len(list) <= idx {
			list = append(list, nil)
		}
		if len(keys) == 1 {
			list[idx] = val
		} else {
			sub, ok := list[idx].(map[string]interface{})
			if !ok {
				sub = map[string]interface{}{}
			}
			if err := setPath(sub, keys[1:], val); err != nil {
				return err
			}
			list[idx] = sub
		}
		m[k] = list
		return nil
	}
	if len(keys) == 1 {
		m[k] = val
		return nil
	}
	sub, ok := m[k].(map[string]interface{})
	if !ok {
		sub = map[string]interface{}{}
		m[k] = sub
	}
	return setPath(sub, keys[1:], val)
}

func parseSet(expr string, into map[string]interface{}, asString bool) error {
	for _, assign := range splitUnescaped(expr, ',') {
		if assign == "" {
			continue
		}
		eq := strings.IndexByte(assign, '=')
		if eq <= 0 {
			return fmt.Errorf("--set %q: expected key=value", assign)
		}
		key, raw := assign[:eq], assign[eq+1:]
		var val interface{}
		if len(raw) >= 2 && raw[0] == '{' && raw[len(raw)-1] == '}' {
			items := []interface{}{}
			if inner := raw[1 : len(raw)-1]; inner != "" {
				for _, it := range splitUnescaped(inner, ',') {
					items = append(items, typedValue(it, asString))
				}
			}
			val = items
		} else {
			val = typedValue(raw, asString)
		}
		if err := setPath(into, splitUnescaped(key, '.'), val); err != nil {
			return fmt.Errorf("--set %q: %v", assign, err)
		}
	}
	return nil
}

// ---- objects the templates see ------------------------------------------------------

// Files mirrors Helm's .Files for the chart's non-template files.
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string      { return string(f[name]) }
func (f Files) Lines(name string) []string {
	s := string(f[name])
	if s == "" {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for k, v := range f {
		if ok, _ := path.Match(pattern, k); ok {
			out[k] = v
		}
	}
	return out
}
func (f Files) AsConfig() string {
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = string(v)
	}
	return toYAML(m)
}

// APIVersions mirrors Helm's .Capabilities.APIVersions.
type APIVersions []string

func (a APIVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

// KubeVersion mirrors Helm's .Capabilities.KubeVersion.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (k KubeVersion) String() string     { return k.Version }
func (k KubeVersion) GitVersion() string { return k.Version }

// Built-in API groups of a current Kubernetes (what Helm's DefaultVersionSet holds).
var defaultAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
	"admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "apiregistration.k8s.io/v1",
	"authentication.k8s.io/v1", "authorization.k8s.io/v1", "certificates.k8s.io/v1",
	"coordination.k8s.io/v1", "discovery.k8s.io/v1", "events.k8s.io/v1",
	"networking.k8s.io/v1", "node.k8s.io/v1", "rbac.authorization.k8s.io/v1",
	"scheduling.k8s.io/v1", "storage.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1beta3",
}

// ---- Helm's extra functions ---------------------------------------------------------

func toYAML(v interface{}) string {
	// sigs.k8s.io/yaml: JSON first (so struct tags and key order are JSON's), then YAML.
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var obj interface{}
	if err := yaml.Unmarshal(j, &obj); err != nil {
		return ""
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(out), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m, err := yamlToMap([]byte(s))
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	var raw interface{}
	if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
		return []interface{}{err.Error()}
	}
	n, err := jsonNormalize(raw)
	if err != nil {
		return []interface{}{err.Error()}
	}
	l, ok := n.([]interface{})
	if !ok {
		return []interface{}{"not a list"}
	}
	return l
}

func toJSON(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	var l []interface{}
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return []interface{}{err.Error()}
	}
	return l
}

func required(msg string, v interface{}) (interface{}, error) {
	if v == nil {
		return v, errors.New(msg)
	}
	if s, ok := v.(string); ok && s == "" {
		return v, errors.New(msg)
	}
	return v, nil
}

type cluster []map[string]interface{}

func (c cluster) lookup(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
	var items []interface{}
	for _, o := range c {
		md, _ := o["metadata"].(map[string]interface{})
		if o["apiVersion"] != apiVersion || o["kind"] != kind || md == nil {
			continue
		}
		if namespace != "" && md["namespace"] != namespace {
			continue
		}
		if name == "" {
			items = append(items, o)
		} else if md["name"] == name {
			return o, nil
		}
	}
	if name == "" && len(items) > 0 {
		return map[string]interface{}{"apiVersion": apiVersion, "kind": kind + "List",
			"items": items}, nil
	}
	return map[string]interface{}{}, nil
}

// ---- the engine ---------------------------------------------------------------------

const recursionMax = 1000

type engine struct {
	root     *template.Template
	included map[string]int
	lookup   func(string, string, string, string) (map[string]interface{}, error)
}

func (e *engine) funcs(t *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = toYAML
	f["fromYaml"] = fromYAML
	f["fromYamlArray"] = fromYAMLArray
	f["toJson"] = toJSON
	f["fromJson"] = fromJSON
	f["fromJsonArray"] = fromJSONArray
	f["required"] = required
	f["lookup"] = e.lookup
	f["include"] = func(name string, data interface{}) (string, error) {
		if e.included[name] > recursionMax {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		e.included[name]++
		defer func() { e.included[name]-- }()
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	f["tpl"] = func(text string, vals map[string]interface{}) (string, error) {
		clone, err := t.Clone()
		if err != nil {
			return "", err
		}
		clone.Option("missingkey=zero")
		clone.Funcs(e.funcs(clone))
		tname := "tpl"
		if tm, ok := vals["Template"].(map[string]interface{}); ok {
			if n, ok := tm["Name"].(string); ok {
				tname = n
			}
		}
		nt, err := clone.New(tname).Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", text, err)
		}
		var buf strings.Builder
		if err := nt.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	return f
}

// Helm's InstallOrder: kinds not listed sort after these, by kind name.
var installOrder = []string{"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService"}

type manifest struct {
	source  string
	content string
	kind    string
	seq     int
}

var sepRe = regexp.MustCompile(`(?:^|\s*\n)---\s*`)
var kindRe = regexp.MustCompile(`(?m)^kind:\s*"?([A-Za-z0-9]+)"?\s*$`)

func kindRank(k string) int {
	for i, x := range installOrder {
		if x == k {
			return i
		}
	}
	return len(installOrder)
}

// ---- command line -------------------------------------------------------------------

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "Error: "+format+"\n", a...)
	os.Exit(1)
}

func chartMeta(data []byte) (map[string]interface{}, error) {
	m, err := yamlToMap(data)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	for k, v := range m {
		switch k {
		case "apiVersion":
			out["APIVersion"] = v
		default:
			out[strings.ToUpper(k[:1])+k[1:]] = v
		}
	}
	for _, req := range []string{"APIVersion", "Name", "Version"} {
		if s, _ := out[req].(string); s == "" {
			return nil, fmt.Errorf("Chart.yaml: %s is required", req)
		}
	}
	return out, nil
}

func main() {
	var valueFiles, sets, setStrings, setFiles, apiVersions, showOnly multi
	name := flag.String("name", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	isUpgrade := flag.Bool("is-upgrade", false, "set .Release.IsUpgrade instead of .Release.IsInstall")
	kubeVersion := flag.String("kube-version", "v1.29.0", "Kubernetes version for .Capabilities")
	lookupFile := flag.String("lookup", "", "multi-document YAML of objects lookup finds")
	valuesOut := flag.String("values-out", "", "write the final values as JSON here (before rendering)")
	notes := flag.Bool("notes", false, "also print the rendered NOTES.txt")
	valuesOnly := flag.Bool("values-only", false, "stop after writing --values-out (Helm validates the schema before rendering)")
	flag.Var(&valueFiles, "f", "values file (repeatable)")
	flag.Var(&sets, "set", "key=value overrides (repeatable)")
	flag.Var(&setStrings, "set-string", "key=value overrides, values kept as strings (repeatable)")
	flag.Var(&setFiles, "set-file", "key=path: the file's content as a string value (repeatable)")
	flag.Var(&apiVersions, "api-versions", "extra API versions for .Capabilities (repeatable)")
	flag.Var(&showOnly, "show-only", "only print this template, e.g. templates/service.yaml (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		die("usage: render [flags] CHART_DIR")
	}
	chartDir := flag.Arg(0)

	metaBytes, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		die("%v", err)
	}
	meta, err := chartMeta(metaBytes)
	if err != nil {
		die("%v", err)
	}
	chartName := meta["Name"].(string)

	kv := strings.TrimPrefix(*kubeVersion, "v")
	parts := strings.SplitN(kv, ".", 3)
	if len(parts) < 2 {
		die("--kube-version %q: expected vMAJOR.MINOR.PATCH", *kubeVersion)
	}
	if c, _ := meta["KubeVersion"].(string); c != "" && !kubeVersionOK(c, kv) {
		die("chart requires kubeVersion: %s which is incompatible with Kubernetes v%s", c, kv)
	}

	// Values: chart defaults <- -f files (in order) <- --set <- --set-string <- --set-file.
	defaults := map[string]interface{}{}
	if b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml")); err == nil {
		if defaults, err = yamlToMap(b); err != nil {
			die("values.yaml: %v", err)
		}
	}
	user := map[string]interface{}{}
	for _, f := range valueFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			die("%v", err)
		}
		m, err := yamlToMap(b)
		if err != nil {
			die("%s: %v", f, err)
		}
		user = mergeMaps(user, m)
	}
	for _, s := range sets {
		if err := parseSet(s, user, false); err != nil {
			die("%v", err)
		}
	}
	for _, s := range setStrings {
		if err := parseSet(s, user, true); err != nil {
			die("%v", err)
		}
	}
	for _, s := range setFiles {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			die("--set-file %q: expected key=path", s)
		}
		b, err := os.ReadFile(s[eq+1:])
		if err != nil {
			die("--set-file: %v", err)
		}
		if err := setPath(user, splitUnescaped(s[:eq], '.'), string(b)); err != nil {
			die("--set-file %q: %v", s, err)
		}
	}
	values := coalesce(user, defaults)
	if *valuesOut != "" {
		b, err := json.MarshalIndent(values, "", "  ")
		if err != nil {
			die("values: %v", err)
		}
		if err := os.WriteFile(*valuesOut, b, 0o644); err != nil {
			die("%v", err)
		}
	}
	if *valuesOnly {
		return
	}

	var objs cluster
	if *lookupFile != "" {
		b, err := os.ReadFile(*lookupFile)
		if err != nil {
			die("%v", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var raw interface{}
			if err := dec.Decode(&raw); err != nil {
				if err.Error() == "EOF" {
					break
				}
				die("%s: %v", *lookupFile, err)
			}
			n, err := jsonNormalize(raw)
			if err != nil {
				die("%s: %v", *lookupFile, err)
			}
			if m, ok := n.(map[string]interface{}); ok {
				objs = append(objs, m)
			}
		}
	}

	// Files and templates.
	files := Files{}
	tplNames := []string{}
	tplText := map[string]string{}
	err = filepath.WalkDir(chartDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			n := chartName + "/" + rel
			tplNames = append(tplNames, n)
			tplText[n] = string(b)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" ||
			strings.HasPrefix(path.Base(rel), "."):
		default:
			files[rel] = b
		}
		return nil
	})
	if err != nil {
		die("%v", err)
	}
	sort.Strings(tplNames)

	e := &engine{included: map[string]int{}, lookup: objs.lookup}
	root := template.New("gotpl").Option("missingkey=zero")
	root.Funcs(e.funcs(root))
	for _, n := range tplNames {
		if _, err := root.New(n).Parse(tplText[n]); err != nil {
			die("parse error in %v", err)
		}
	}
	e.root = root

	top := map[string]interface{}{
		"Values": values,
		"Chart":  meta,
		"Release": map[string]interface{}{
			"Name": *name, "Namespace": *namespace, "IsUpgrade": *isUpgrade,
			"IsInstall": !*isUpgrade, "Revision": 1, "Service": "Helm",
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": KubeVersion{Version: "v" + kv, Major: parts[0], Minor: parts[1]},
			"APIVersions": APIVersions(append(append([]string{}, defaultAPIVersions...), apiVersions...)),
			"HelmVersion": map[string]interface{}{"Version": "v3.14.0"},
		},
		"Files":     files,
		"Subcharts": map[string]interface{}{},
	}
	if *isUpgrade {
		top["Release"].(map[string]interface{})["Revision"] = 2
	}

	var out []manifest
	var notesText string
	for _, n := range tplNames {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		top["Template"] = map[string]interface{}{"Name": n, "BasePath": chartName + "/templates"}
		var buf strings.Builder
		if err := root.ExecuteTemplate(&buf, n, top); err != nil {
			die("%v", err)
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			notesText = text
			continue
		}
		if !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") &&
			!strings.HasSuffix(base, ".tpl") && !strings.HasSuffix(base, ".json") {
			continue
		}
		for _, doc := range sepRe.Split(text, -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			k := ""
			if m := kindRe.FindStringSubmatch(doc); m != nil {
				k = m[1]
			}
			out = append(out, manifest{source: n, content: strings.TrimSpace(doc),
				kind: k, seq: len(out)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := kindRank(out[i].kind), kindRank(out[j].kind)
		if ri != rj {
			return ri < rj
		}
		if ri == len(installOrder) && out[i].kind != out[j].kind {
			return out[i].kind < out[j].kind
		}
		return out[i].seq < out[j].seq
	})
	var w strings.Builder
	for _, m := range out {
		if len(showOnly) > 0 && !showOnly.has(strings.TrimPrefix(m.source, chartName+"/")) {
			continue
		}
		fmt.Fprintf(&w, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	if *notes && notesText != "" {
		fmt.Fprintf(&w, "\nNOTES:\n%s\n", notesText)
	}
	os.Stdout.WriteString(w.String())
}

func (m *multi) has(s string) bool {
	for _, x := range *m {
		if x == s {
			return true
		}
	}
	return false
}

// kubeVersionOK checks the simple constraint forms charts use (">=1.25.0-0", ">= 1.25").
func kubeVersionOK(constraint, version string) bool {
	for _, c := range strings.Split(constraint, ",") {
		c = strings.TrimSpace(c)
		op := strings.TrimRight(c[:len(c)-len(strings.TrimLeft(c, "<>=!~^ "))], " ")
		want := strings.TrimSpace(strings.TrimLeft(c, "<>=!~^ "))
		cmp := compareVersions(version, strings.SplitN(want, "-", 2)[0])
		ok := true
		switch op {
		case ">=":
			ok = cmp >= 0
		case ">":
			ok = cmp > 0
		case "<=":
			ok = cmp <= 0
		case "<":
			ok = cmp < 0
		case "=", "":
			ok = cmp == 0
		case "!=":
			ok = cmp != 0
		}
		if !ok {
			return false
		}
	}
	return true
}

func compareVersions(a, b string) int {
	pa, pb := strings.Split(strings.TrimPrefix(a, "v"), "."), strings.Split(strings.TrimPrefix(b, "v"), ".")
	for i := 0; i < 3; i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(strings.SplitN(pa[i], "-", 2)[0])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(strings.SplitN(pb[i], "-", 2)[0])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
