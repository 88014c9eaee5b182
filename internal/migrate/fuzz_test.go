package migrate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/heraldlb/herald/internal/config"
)

// FuzzConvert feeds any document to the converter: it must not panic, and
// what it writes must be accepted by Herald's configuration model (the
// converter leaves out what would not be).
func FuzzConvert(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/*.in.yaml")
	for _, p := range inputs {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var in Input
		if err := in.AddYAML("fuzz", data); err != nil {
			return
		}
		res := Convert(&in)
		if _, problems := config.Build(res.Output.ConfigInput(), nil); len(problems) > 0 {
			for _, p := range problems {
				if !p.Warning {
					t.Errorf("written but refused by Herald: %v", p)
				}
			}
		}
		for _, obj := range res.Output.Objects() {
			if _, err := ObjectYAML(obj); err != nil {
				t.Errorf("%T: %v", obj, err)
			}
		}
	})
}
