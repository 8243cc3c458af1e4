package jsonscan

import "testing"

func TestPlain(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
		next int // I after a successful read
	}{
		{`"abc",`, "abc", true, 5},
		{`""`, "", true, 2},
		{`"张三"}`, "张三", true, 8},
		{`"a\"b"`, "", false, 0},
		{`"a\nb"`, "", false, 0},
		{"\"a\tb\"", "", false, 0},
		{"\"\xff\"", "", false, 0},
		{`"open`, "", false, 0},
		{`abc`, "", false, 0},
	}
	for _, tt := range tests {
		d := Scanner{B: []byte(tt.in)}
		got, ok := d.Plain()
		if ok != tt.ok || string(got) != tt.want || (ok && d.I != tt.next) {
			t.Errorf("Plain(%q) = %q, %v at %d; want %q, %v at %d", tt.in, got, ok, d.I, tt.want, tt.ok, tt.next)
		}
	}
}

func TestWSEatAtEnd(t *testing.T) {
	d := Scanner{B: []byte(" \t\n{ } \r\n")}
	d.WS()
	if !d.Eat('{') || d.Eat('{') {
		t.Fatal("Eat after white space")
	}
	d.WS()
	if !d.Eat('}') || !d.AtEnd() {
		t.Fatalf("not at end: I=%d", d.I)
	}
	if d := (Scanner{B: []byte("} x")}); !d.Eat('}') || d.AtEnd() {
		t.Fatal("AtEnd with a byte left")
	}
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		`"id":1`: "id", ` "id" : 1`: "id", "\n\"a\"\t:\r 1": "a", `"":1`: "",
		`"id"1`: "!", `id:1`: "!", `"i\"d":1`: "!", `"id"`: "!", ``: "!",
	} {
		d := Scanner{B: []byte(in)}
		name, ok := d.Name()
		got := string(name)
		if !ok {
			got = "!"
		} else if d.B[d.I] != '1' {
			t.Errorf("Name(%q) left the scanner at %q, want the value", in, d.B[d.I:])
		}
		if got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}
