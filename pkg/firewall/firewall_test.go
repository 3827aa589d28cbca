package firewall

import (
	"testing"
	"time"
)

func TestConnLimitValidate(t *testing.T) {
	for _, tc := range []struct {
		l  ConnLimit
		ok bool
	}{
		{ConnLimit{Rate: 10, Per: time.Minute, Burst: 5}, true},
		{ConnLimit{Rate: 1, Per: time.Second}, true},
		{ConnLimit{Rate: 1, Per: time.Hour}, true},
		{ConnLimit{Rate: 1, Per: 24 * time.Hour, Ban: true, BanTimeout: time.Hour}, true},
		{ConnLimit{Rate: 10, Per: time.Minute, BanTimeout: -1}, true}, // ignored without Ban
		{ConnLimit{Per: time.Minute}, false},
		{ConnLimit{Rate: 10}, false},
		{ConnLimit{Rate: 10, Per: 7 * 24 * time.Hour}, false},
		{ConnLimit{Rate: 10, Per: time.Minute, Ban: true}, false},
		{ConnLimit{Rate: 10, Per: time.Minute, Ban: true, BanTimeout: time.Millisecond}, false},
	} {
		if err := tc.l.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tc.l, err, tc.ok)
		}
	}
}

func TestEffectiveBurst(t *testing.T) {
	if got := (&ConnLimit{}).EffectiveBurst(); got != DefaultConnBurst {
		t.Errorf("EffectiveBurst of 0 = %d, want %d", got, DefaultConnBurst)
	}
	if got := (&ConnLimit{Burst: 3}).EffectiveBurst(); got != 3 {
		t.Errorf("EffectiveBurst of 3 = %d, want 3", got)
	}
}
