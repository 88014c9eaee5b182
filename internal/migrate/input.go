package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Input is the MetalLB configuration to convert, collected from YAML or
// JSON documents and from decoded objects. The zero value is empty and
// ready to use.
type Input struct {
	objs    []object
	ignored []Finding
}

// object is one metallb.io object or ConfigMap, still undecoded.
type object struct {
	apiVersion, kind string
	raw              map[string]any
}

// id names the object in the report: "metallb.io/v1beta1 IPAddressPool
// metallb-system/first-pool".
func (o object) id() string {
	return objectID(o.apiVersion, o.kind, o.raw)
}

func objectID(apiVersion, kind string, raw map[string]any) string {
	md, _ := raw["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	if ns, _ := md["namespace"].(string); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %s %s", apiVersion, kind, name)
}

// AddYAML adds every object of a stream of YAML documents (separated by
// "---") or JSON values. source names the stream in errors.
func (in *Input) AddYAML(source string, data []byte) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for i := 0; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		if doc == nil {
			continue // an empty document
		}
		if err := in.AddObject(doc); err != nil {
			return fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
	}
}

// AddObject adds one decoded object, as a cluster returns it
// (unstructured content). A List adds its items. Objects that are not
// MetalLB configuration are recorded as ignored.
func (in *Input) AddObject(obj map[string]any) error {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if apiVersion == "" || kind == "" {
		return errors.New("an object without apiVersion or kind")
	}
	if items, ok := obj["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		for i, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				return fmt.Errorf("%s item %d: not an object", kind, i)
			}
			if _, ok := m["apiVersion"]; !ok {
				// Typed lists may leave the items' type implicit.
				m["apiVersion"], m["kind"] = apiVersion, strings.TrimSuffix(kind, "List")
			}
			if err := in.AddObject(m); err != nil {
				return fmt.Errorf("%s item %d: %w", kind, i, err)
			}
		}
		return nil
	}
	group, version, _ := strings.Cut(apiVersion, "/")
	if version == "" {
		group = ""
	}
	o := object{apiVersion: apiVersion, kind: kind, raw: obj}
	switch {
	case group == metallbGroup && isStatusKind(kind):
		in.ignored = append(in.ignored, Finding{Severity: Ignored, Source: o.id(), Message: "status only; nothing to convert"})
	case group == metallbGroup:
		in.objs = append(in.objs, o)
	case apiVersion == "v1" && kind == kindConfigMap && hasLegacyConfig(obj):
		in.objs = append(in.objs, o)
	default:
		in.ignored = append(in.ignored, Finding{Severity: Ignored, Source: o.id(), Message: "not MetalLB configuration"})
	}
	return nil
}

// hasLegacyConfig reports whether a ConfigMap holds MetalLB's pre-0.13
// configuration: a "config" key.
func hasLegacyConfig(obj map[string]any) bool {
	data, _ := obj["data"].(map[string]any)
	_, ok := data["config"].(string)
	return ok
}

// decodeInto decodes raw into v, a mirror type, through JSON.
func decodeInto(raw map[string]any, v any) error {
	b, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
