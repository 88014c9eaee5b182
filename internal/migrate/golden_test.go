package migrate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/ from the converter's output")

// convertFile converts one testdata input.
func convertFile(t *testing.T, path string) *Result {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	if err := in.AddYAML(filepath.Base(path), data); err != nil {
		t.Fatal(err)
	}
	return Convert(&in)
}

// checkGolden compares got with the golden file, or rewrites it with
// -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/migrate -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run with -update to accept it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestGolden converts every testdata/*.in.yaml and compares the objects
// with *.golden.yaml and the report with *.report.golden.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		base := strings.TrimSuffix(in, ".in.yaml")
		t.Run(filepath.Base(base), func(t *testing.T) {
			res := convertFile(t, in)
			var objs, rep bytes.Buffer
			if err := res.Output.WriteYAML(&objs); err != nil {
				t.Fatal(err)
			}
			if err := res.Report.WriteText(&rep); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, base+".golden.yaml", objs.Bytes())
			checkGolden(t, base+".report.golden", rep.Bytes())
		})
	}
}

// TestGoldenIsValidHerald decodes every golden output strictly into
// Herald's API types (an unknown field is an error) and runs it through
// Herald's configuration model: it must report no problem.
func TestGoldenIsValidHerald(t *testing.T) {
	goldens, err := filepath.Glob("testdata/*.golden.yaml")
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range goldens {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			in := config.Input{Secrets: map[string]map[string][]byte{}}
			for i, doc := range strings.Split(string(data), "\n---\n") {
				if strings.TrimSpace(doc) == "" {
					continue
				}
				var tm struct{ APIVersion, Kind string }
				if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
					t.Fatalf("document %d: %v", i, err)
				}
				if tm.APIVersion != "herald.io/v1beta1" {
					t.Fatalf("document %d: apiVersion %q", i, tm.APIVersion)
				}
				strict := func(v any) {
					if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
						t.Fatalf("document %d (%s): %v", i, tm.Kind, err)
					}
				}
				switch tm.Kind {
				case config.KindIPAddressPool:
					var o v1beta1.IPAddressPool
					strict(&o)
					in.Pools = append(in.Pools, o)
				case config.KindL2Advertisement:
					var o v1beta1.L2Advertisement
					strict(&o)
					in.L2Advertisements = append(in.L2Advertisements, o)
				case config.KindBGPAdvertisement:
					var o v1beta1.BGPAdvertisement
					strict(&o)
					in.BGPAdvertisements = append(in.BGPAdvertisements, o)
				case config.KindBGPPeer:
					var o v1beta1.BGPPeer
					strict(&o)
					if o.Spec.PasswordSecret != nil {
						in.Secrets[o.Spec.PasswordSecret.Name] = map[string][]byte{"password": []byte("x")}
					}
					in.Peers = append(in.Peers, o)
				case config.KindBFDProfile:
					var o v1beta1.BFDProfile
					strict(&o)
					in.BFDProfiles = append(in.BFDProfiles, o)
				case config.KindCommunity:
					var o v1beta1.Community
					strict(&o)
					in.Communities = append(in.Communities, o)
				default:
					t.Fatalf("document %d: unexpected kind %q", i, tm.Kind)
				}
			}
			if _, problems := config.Build(in, nil); len(problems) > 0 {
				for _, p := range problems {
					t.Errorf("Herald reports: %v", p)
				}
			}
		})
	}
}
