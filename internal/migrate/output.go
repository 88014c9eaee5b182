package migrate

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
)

// Output holds the Herald objects a conversion wrote, each kind sorted by
// name.
type Output struct {
	BFDProfiles       []v1beta1.BFDProfile
	Communities       []v1beta1.Community
	Pools             []v1beta1.IPAddressPool
	Peers             []v1beta1.BGPPeer
	L2Advertisements  []v1beta1.L2Advertisement
	BGPAdvertisements []v1beta1.BGPAdvertisement
}

// Objects returns every object in the order they are best applied: the
// objects that others name come first.
func (o *Output) Objects() []runtime.Object {
	var out []runtime.Object
	for i := range o.BFDProfiles {
		out = append(out, &o.BFDProfiles[i])
	}
	for i := range o.Communities {
		out = append(out, &o.Communities[i])
	}
	for i := range o.Pools {
		out = append(out, &o.Pools[i])
	}
	for i := range o.Peers {
		out = append(out, &o.Peers[i])
	}
	for i := range o.L2Advertisements {
		out = append(out, &o.L2Advertisements[i])
	}
	for i := range o.BGPAdvertisements {
		out = append(out, &o.BGPAdvertisements[i])
	}
	return out
}

// remove deletes the objects whose "Kind/name" is in keys.
func (o *Output) remove(keys map[string]bool) {
	o.BFDProfiles = slices.DeleteFunc(o.BFDProfiles, func(x v1beta1.BFDProfile) bool { return keys[config.KindBFDProfile+"/"+x.Name] })
	o.Communities = slices.DeleteFunc(o.Communities, func(x v1beta1.Community) bool { return keys[config.KindCommunity+"/"+x.Name] })
	o.Pools = slices.DeleteFunc(o.Pools, func(x v1beta1.IPAddressPool) bool { return keys[config.KindIPAddressPool+"/"+x.Name] })
	o.Peers = slices.DeleteFunc(o.Peers, func(x v1beta1.BGPPeer) bool { return keys[config.KindBGPPeer+"/"+x.Name] })
	o.L2Advertisements = slices.DeleteFunc(o.L2Advertisements, func(x v1beta1.L2Advertisement) bool { return keys[config.KindL2Advertisement+"/"+x.Name] })
	o.BGPAdvertisements = slices.DeleteFunc(o.BGPAdvertisements, func(x v1beta1.BGPAdvertisement) bool { return keys[config.KindBGPAdvertisement+"/"+x.Name] })
}

// ConfigInput returns the objects as the input of Herald's configuration
// model. Every Secret that a BGPPeer names is given a placeholder password,
// as the converter cannot see Herald's namespace.
func (o *Output) ConfigInput() config.Input {
	in := config.Input{
		Pools:             o.Pools,
		L2Advertisements:  o.L2Advertisements,
		BGPAdvertisements: o.BGPAdvertisements,
		Peers:             o.Peers,
		BFDProfiles:       o.BFDProfiles,
		Communities:       o.Communities,
		Secrets:           map[string]map[string][]byte{},
	}
	for _, p := range o.Peers {
		if p.Spec.PasswordSecret != nil {
			in.Secrets[p.Spec.PasswordSecret.Name] = map[string][]byte{"password": []byte("placeholder")}
		}
	}
	return in
}

// File is one object rendered for a directory.
type File struct {
	// Name is "<kind>-<name>.yaml", in lowercase.
	Name string
	Data []byte
}

// Files renders one YAML file per object.
func (o *Output) Files() ([]File, error) {
	var files []File
	for _, obj := range o.Objects() {
		data, err := ObjectYAML(obj)
		if err != nil {
			return nil, err
		}
		m := obj.(metav1.Object)
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		files = append(files, File{Name: strings.ToLower(kind) + "-" + m.GetName() + ".yaml", Data: data})
	}
	return files, nil
}

// WriteYAML writes every object as one YAML stream, documents separated by
// "---".
func (o *Output) WriteYAML(w io.Writer) error {
	var b bytes.Buffer
	for i, obj := range o.Objects() {
		data, err := ObjectYAML(obj)
		if err != nil {
			return err
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(data)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// ObjectYAML renders one object for kubectl apply: no status, no empty
// creationTimestamp, keys sorted.
func ObjectYAML(obj runtime.Object) ([]byte, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("%T: %w", obj, err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

// typeMeta returns the TypeMeta of a herald.io/v1beta1 kind.
func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: kind}
}
