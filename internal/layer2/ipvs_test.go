package layer2

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckIPVSStrictARP(t *testing.T) {
	tests := []struct {
		desc      string
		ipvs      bool
		arpIgnore string // "" means the file is missing
		wantWarn  bool
		wantErr   bool
	}{
		{desc: "no IPVS", ipvs: false, arpIgnore: "0\n"},
		{desc: "IPVS with strictARP", ipvs: true, arpIgnore: "1\n"},
		{desc: "IPVS with arp_ignore 2", ipvs: true, arpIgnore: "2\n"},
		{desc: "IPVS without strictARP", ipvs: true, arpIgnore: "0\n", wantWarn: true},
		{desc: "unreadable sysctl", ipvs: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			root := t.TempDir()
			sys := filepath.Join(root, "sys")
			proc := filepath.Join(root, "proc")
			must(t, os.MkdirAll(filepath.Join(sys, "eth0"), 0o755))
			if tc.ipvs {
				must(t, os.MkdirAll(filepath.Join(sys, IPVSInterface), 0o755))
			}
			conf := filepath.Join(proc, "ipv4", "conf", "all")
			must(t, os.MkdirAll(conf, 0o755))
			if tc.arpIgnore != "" {
				must(t, os.WriteFile(filepath.Join(conf, "arp_ignore"), []byte(tc.arpIgnore), 0o644))
			}
			warn, err := CheckIPVSStrictARP(sys, proc)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if (warn != "") != tc.wantWarn {
				t.Fatalf("warning %q, want one: %v", warn, tc.wantWarn)
			}
			if tc.wantWarn && !strings.Contains(warn, "strictARP") {
				t.Fatalf("warning does not say what to do: %q", warn)
			}
		})
	}
}

func TestSkippedBySysfs(t *testing.T) {
	tests := []struct {
		desc   string
		flags  string
		master bool
		want   bool
	}{
		{desc: "plain", flags: "0x1003\n", want: false},
		{desc: "NOARP (kube-ipvs0)", flags: "0x83\n", want: true},
		{desc: "bridge slave", flags: "0x1003\n", master: true, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "if0")
			must(t, os.MkdirAll(dir, 0o755))
			must(t, os.WriteFile(filepath.Join(dir, "flags"), []byte(tc.flags), 0o644))
			if tc.master {
				must(t, os.Symlink("../br0", filepath.Join(dir, "master")))
			}
			got, err := skippedBySysfs(root, "if0")
			if err != nil || got != tc.want {
				t.Fatalf("skipped = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestHasCarrier(t *testing.T) {
	dir := t.TempDir()
	for name, state := range map[string]string{"up0": "up\n", "unk0": "unknown\n", "down0": "down\n", "lld0": "lowerlayerdown\n", "dorm0": "dormant\n"} {
		must(t, os.MkdirAll(filepath.Join(dir, name), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name, "operstate"), []byte(state), 0o644))
	}
	for name, want := range map[string]bool{"up0": true, "unk0": true, "down0": false, "lld0": false, "dorm0": false, "nosysfs0": true} {
		if got := hasCarrier(dir, name); got != want {
			t.Errorf("hasCarrier(%s) = %v, want %v", name, got, want)
		}
	}
}
