package loggen

import (
	"bytes"
	"strings"
	"testing"
)

func TestPostfixDeterministicAndMixed(t *testing.T) {
	o := Options{Lines: 20000, AttackShare: 0.2, Attackers: 1000, Seed: 7}
	var a, b bytes.Buffer
	if err := Postfix(&a, o); err != nil {
		t.Fatal(err)
	}
	if err := Postfix(&b, o); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same seed gave two logs")
	}
	lines := strings.Split(strings.TrimSuffix(a.String(), "\n"), "\n")
	if len(lines) != o.Lines {
		t.Fatalf("%d lines, want %d", len(lines), o.Lines)
	}
	attack := 0
	for _, l := range lines {
		if strings.Contains(l, "unknown[") || strings.Contains(l, "PREGREET") || strings.Contains(l, "[11.") {
			attack++
		}
	}
	if share := float64(attack) / float64(len(lines)); share < 0.15 || share > 0.25 {
		t.Errorf("attack lines are %.1f%% of the log, want about 20%%", 100*share)
	}
	var c bytes.Buffer
	o.Seed = 8
	if err := Postfix(&c, o); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Error("two seeds gave the same log")
	}
}
