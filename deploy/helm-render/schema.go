package main

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// validateSchema checks values against the JSON-schema keywords the chart's values.schema.json
// uses: type, properties, required, additionalProperties (bool or schema), patternProperties,
// items, enum, minimum, maximum, minLength, pattern, anyOf, oneOf and local $ref
// ("#/definitions/x" or "#/$defs/x"). Unknown keywords are ignored, as JSON schema says.
// Returns one message per violation, each naming the value's path.
func validateSchema(root map[string]interface{}, value interface{}, where string) []string {
	v := schemaValidator{root: root}
	v.check(root, value, where)
	return v.errs
}

type schemaValidator struct {
	root map[string]interface{}
	errs []string
}

func (v *schemaValidator) fail(where, format string, args ...interface{}) {
	v.errs = append(v.errs, where+": "+fmt.Sprintf(format, args...))
}

func (v *schemaValidator) resolve(schema map[string]interface{}) map[string]interface{} {
	ref, ok := schema["$ref"].(string)
	if !ok {
		return schema
	}
	cur := interface{}(v.root)
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, _ := cur.(map[string]interface{})
		cur = m[part]
	}
	resolved, _ := cur.(map[string]interface{})
	if resolved == nil {
		v.fail("schema", "unresolved $ref %s", ref)
		return map[string]interface{}{}
	}
	return v.resolve(resolved)
}

func jsonType(value interface{}) string {
	switch t := value.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int, int64, uint64:
		return "integer"
	case float64:
		if t == float64(int64(t)) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []interface{}:
		return "array"
	case map[string]interface{}:
		return "object"
	}
	return fmt.Sprintf("%T", value)
}

func typeMatches(want, got string) bool {
	return want == got || (want == "number" && got == "integer")
}

func asFloat(value interface{}) (float64, bool) {
	switch t := value.(type) {
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case uint64:
		return float64(t), true
	case float64:
		return t, true
	}
	return 0, false
}

func (v *schemaValidator) matches(schema map[string]interface{}, value interface{}) bool {
	sub := schemaValidator{root: v.root}
	sub.check(schema, value, "")
	return len(sub.errs) == 0
}

func (v *schemaValidator) check(schema map[string]interface{}, value interface{}, where string) {
	schema = v.resolve(schema)
	got := jsonType(value)
	switch want := schema["type"].(type) {
	case string:
		if !typeMatches(want, got) {
			v.fail(where, "got %s, want %s", got, want)
			return
		}
	case []interface{}:
		ok := false
		for _, w := range want {
			if s, _ := w.(string); typeMatches(s, got) {
				ok = true
			}
		}
		if !ok {
			v.fail(where, "got %s, want one of %v", got, want)
			return
		}
	}
	if enum, ok := schema["enum"].([]interface{}); ok {
		found := false
		for _, e := range enum {
			if fmt.Sprint(e) == fmt.Sprint(value) && jsonType(e) == got {
				found = true
			}
		}
		if !found {
			v.fail(where, "value must be one of %v, got %v", enum, value)
		}
	}
	if n, ok := asFloat(value); ok {
		if min, ok := asFloat(schema["minimum"]); ok && n < min {
			v.fail(where, "must be >= %v, got %v", schema["minimum"], value)
		}
		if max, ok := asFloat(schema["maximum"]); ok && n > max {
			v.fail(where, "must be <= %v, got %v", schema["maximum"], value)
		}
	}
	if s, ok := value.(string); ok {
		if min, ok := asFloat(schema["minLength"]); ok && float64(len(s)) < min {
			v.fail(where, "must be at least %v characters long", schema["minLength"])
		}
		if p, ok := schema["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(s) {
			v.fail(where, "%q does not match pattern %s", s, p)
		}
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		alternatives, ok := schema[key].([]interface{})
		if !ok {
			continue
		}
		matched := 0
		for _, a := range alternatives {
			if m, _ := a.(map[string]interface{}); m != nil && v.matches(m, value) {
				matched++
			}
		}
		if matched == 0 || (key == "oneOf" && matched > 1) {
			v.fail(where, "must match %s %s of the allowed schemas (matched %d)",
				map[string]string{"anyOf": "at least", "oneOf": "exactly"}[key],
				map[string]string{"anyOf": "one", "oneOf": "one"}[key], matched)
		}
	}
	if items, ok := schema["items"].(map[string]interface{}); ok {
		if list, ok := value.([]interface{}); ok {
			for i, item := range list {
				v.check(items, item, fmt.Sprintf("%s[%d]", where, i))
			}
		}
	}
	obj, ok := value.(map[string]interface{})
	if !ok {
		return
	}
	if req, ok := schema["required"].([]interface{}); ok {
		for _, r := range req {
			if _, present := obj[fmt.Sprint(r)]; !present {
				v.fail(where, "missing property %q", r)
			}
		}
	}
	props, _ := schema["properties"].(map[string]interface{})
	patterns, _ := schema["patternProperties"].(map[string]interface{})
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		child := where + "." + k
		known := false
		if p, ok := props[k].(map[string]interface{}); ok {
			v.check(p, obj[k], child)
			known = true
		}
		for pattern, p := range patterns {
			if regexp.MustCompile(pattern).MatchString(k) {
				if m, ok := p.(map[string]interface{}); ok {
					v.check(m, obj[k], child)
				}
				known = true
			}
		}
		if known {
			continue
		}
		switch extra := schema["additionalProperties"].(type) {
		case bool:
			if !extra {
				v.fail(where, "additional property %q is not allowed", k)
			}
		case map[string]interface{}:
			v.check(extra, obj[k], child)
		}
	}
}
