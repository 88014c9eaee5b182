package membership

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// KeySize is the size of the memberlist key: AES-256.
const KeySize = 32

// MinSecretSize is the smallest secret DeriveKey accepts. The derived key
// is only as strong as the secret; the Secret a deployment generates should
// hold at least 32 random bytes.
const MinSecretSize = 16

// keyInfo binds derived keys to this use, so the same Secret used for
// something else yields an unrelated key. Changing it changes every key and
// splits a mixed-version cluster: never change it.
const keyInfo = "herald.io/memberlist AES-256-GCM key v1"

// DeriveKey returns the AES-256 key used to encrypt the gossip: HKDF-SHA256
// (RFC 5869) over secret, with no salt and a fixed info string. The rule is
// applied to every secret, including one of exactly 32 bytes, so that all
// speakers agree on the key whatever the secret's length and there is one
// rule to document. A secret shorter than [MinSecretSize] is refused.
func DeriveKey(secret []byte) ([]byte, error) {
	if len(secret) == 0 {
		return nil, errors.New("memberlist secret is empty")
	}
	if len(secret) < MinSecretSize {
		return nil, fmt.Errorf("memberlist secret has %d bytes, want at least %d", len(secret), MinSecretSize)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, keyInfo, KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive memberlist key: %w", err)
	}
	return key, nil
}
