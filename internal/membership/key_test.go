package membership

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestDeriveKey(t *testing.T) {
	tests := []struct {
		desc    string
		secret  string
		wantHex string // from an independent HKDF-SHA256 implementation
		wantErr bool
	}{
		{desc: "32 bytes are derived too", secret: "0123456789abcdef0123456789abcdef", wantHex: "2190663250cb60a54cb0226183e64393eff7d36361c73eef0490cf52a0be4596"},
		{desc: "odd length", secret: "a-secret-of-some-length", wantHex: "517135fd6564f382834d722f18ca50eb92c5ff88c1fd1d75b5c622171fef07be"},
		{desc: "empty", secret: "", wantErr: true},
		{desc: "too short", secret: "short", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := DeriveKey([]byte(tc.secret))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if len(got) != KeySize {
				t.Fatalf("key has %d bytes", len(got))
			}
			if hex.EncodeToString(got) != tc.wantHex {
				t.Fatalf("key %x, want %s", got, tc.wantHex)
			}
			// MetalLB's mistake: sha256.New().Sum(secret) appends the hash
			// of nothing to the secret, so the key starts with the secret.
			if bad := sha256.New().Sum([]byte(tc.secret)); bytes.Equal(got, bad[:KeySize]) {
				t.Fatalf("key equals sha256.New().Sum(secret)")
			}
		})
	}
}
