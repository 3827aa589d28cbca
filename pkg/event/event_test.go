package event

import "testing"

func TestKnown(t *testing.T) {
	if len(Known) != NumKinds {
		t.Fatalf("NumKinds = %d, len(Known) = %d", NumKinds, len(Known))
	}
	for i, k := range Known {
		if k.Index() != i || !k.Valid() {
			t.Errorf("%s: Index %d, Valid %v", k, k.Index(), k.Valid())
		}
	}
	if Kind("brute_force").Valid() || Kind("").Index() != -1 {
		t.Error("an unknown kind is valid")
	}
}
