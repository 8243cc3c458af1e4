package pii_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/checkin-ledger/ledger/domain/pii"
)

func TestSealOpen(t *testing.T) {
	key, err := pii.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := pii.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"张三", "110101199003074258", "+85291234567", "Anna Lee"} {
		t.Run(plain, func(t *testing.T) {
			sealed, err := pii.Seal(key, plain)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if strings.Contains(sealed, plain) {
				t.Fatalf("sealed value %q shows the plaintext", sealed)
			}
			again, _ := pii.Seal(key, plain)
			if again == sealed {
				t.Fatal("two seals of one value are equal: the nonce is not random")
			}
			got, err := pii.Open(key, sealed)
			if err != nil || got != plain {
				t.Fatalf("Open = %q, %v; want %q", got, err, plain)
			}
			if _, err := pii.Open(other, sealed); !errors.Is(err, pii.ErrOpen) {
				t.Fatalf("Open with the wrong key: %v, want ErrOpen", err)
			}
			altered := []byte(sealed)
			altered[len(altered)/2] ^= 1
			if altered[len(altered)/2] == '=' {
				altered[len(altered)/2] = 'A'
			}
			if _, err := pii.Open(key, string(altered)); err == nil {
				t.Fatal("Open accepted an altered value")
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		s, err := pii.Seal(key, "")
		if err != nil || s != "" {
			t.Fatalf("Seal empty = %q, %v", s, err)
		}
		if p, err := pii.Open(key, ""); err != nil || p != "" {
			t.Fatalf("Open empty = %q, %v", p, err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		for _, s := range []string{"!!!", "AAAA"} {
			if _, err := pii.Open(key, s); !errors.Is(err, pii.ErrOpen) {
				t.Fatalf("Open(%q) = %v, want ErrOpen", s, err)
			}
		}
	})
	t.Run("bad key", func(t *testing.T) {
		if _, err := pii.Seal([]byte("short"), "x"); err == nil {
			t.Fatal("Seal with a 5-byte key succeeded")
		}
	})
}

func TestHasher(t *testing.T) {
	if _, err := pii.NewHasher(make([]byte, 31)); err == nil {
		t.Fatal("NewHasher accepted a 31-byte key")
	}
	k1 := bytes.Repeat([]byte{1}, 32)
	k2 := bytes.Repeat([]byte{2}, 32)
	h1, _ := pii.NewHasher(k1)
	h2, _ := pii.NewHasher(k2)
	const id = "11010519491231002X"
	a := h1.IDHash("resident_id", id)
	tests := []struct {
		name  string
		other string
		same  bool
	}{
		{"same input", h1.IDHash("resident_id", id), true},
		{"normalised lower x and spaces", h1.IDHash("resident_id", " 110105 19491231002x"), true},
		{"other type", h1.IDHash("passport", id), false},
		{"other key", h2.IDHash("resident_id", id), false},
		{"other number", h1.IDHash("resident_id", "110105194912310037"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (a == tt.other) != tt.same {
				t.Fatalf("hash equality = %v, want %v", a == tt.other, tt.same)
			}
		})
	}
	if len(a) != 64 || strings.Contains(a, id) {
		t.Fatalf("hash %q is not a 64-hex digest", a)
	}
	if pii.PersonID(a) != pii.PersonID(a) || pii.PersonID(a) == pii.PersonID(h1.IDHash("passport", "E12345678")) {
		t.Fatal("PersonID is not a stable function of the hash")
	}
}

// TestHasherIsHMAC pins the hash to HMAC-SHA256(key, type NUL number): the
// hashes already in the log must keep matching, from any goroutine and
// whatever the hasher hashed before.
func TestHasherIsHMAC(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	h, err := pii.NewHasher(key)
	if err != nil {
		t.Fatal(err)
	}
	want := func(typ, number string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(typ + "\x00" + number))
		return hex.EncodeToString(m.Sum(nil))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				number := fmt.Sprintf("%017d%d", g*1000+i, i%10)
				typ := []string{"resident_id", "passport", "hk_macao_permit"}[i%3]
				if got := h.IDHash(typ, number); got != want(typ, number) {
					t.Errorf("IDHash(%s, %s) = %s, want %s", typ, number, got, want(typ, number))
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkIDHash(b *testing.B) {
	h, err := pii.NewHasher(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		h.IDHash("resident_id", "11010519491231002X")
	}
}

func TestMasks(t *testing.T) {
	masks := map[string]func(string) string{"name": pii.MaskName, "phone": pii.MaskPhone, "id": pii.MaskID}
	tests := []struct{ mask, in, want string }{
		{"name", "张三", "张*"},
		{"name", "欧阳娜娜", "欧*"},
		{"name", " Anna ", "A*"},
		{"name", "", ""},
		{"phone", "13900001111", "139****1111"},
		{"phone", "+8613900001111", "+86*******1111"},
		{"phone", "1234567", "****567"},
		{"id", "110101199003074258", "110***********4258"},
		{"id", "11010519491231002x", "110***********002X"},
		{"id", "E12345678", "*****5678"},
		{"id", "12345678", "****5678"}, // a Taiwan permit: half
		{"id", "H1234567801", "*******7801"},
		{"id", "AB12345", "****345"},
		{"id", "12", "*2"},
		{"id", "1", "*"},
	}
	for _, tt := range tests {
		t.Run(tt.mask+" "+tt.in, func(t *testing.T) {
			got := masks[tt.mask](tt.in)
			if got != tt.want {
				t.Fatalf("mask %s %q = %q, want %q", tt.mask, tt.in, got, tt.want)
			}
			if tt.mask != "id" {
				return
			}
			n := len([]rune(pii.Normalize(tt.in)))
			shown := n - strings.Count(got, "*")
			if len([]rune(got)) != n || shown > n/2 || (n < 14 && shown > 4) {
				t.Fatalf("mask %q of a %d-character number shows %d characters: at most half, and at most 4 of a short one", got, n, shown)
			}
		})
	}
}
