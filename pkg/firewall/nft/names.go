package nft

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/banwatch/banwatch/pkg/firewall"
)

// setKind is one of the four sets a jail owns.
type setKind int

const (
	kindV4   setKind = iota // single IPv4 addresses
	kindV6                  // single IPv6 addresses
	kindNet4                // IPv4 prefixes wider than /32
	kindNet6                // IPv6 prefixes wider than /128
	numKinds
)

// String returns the kind's token in set names.
func (k setKind) String() string {
	switch k {
	case kindV4:
		return "v4"
	case kindV6:
		return "v6"
	case kindNet4:
		return "net4"
	case kindNet6:
		return "net6"
	}
	return "unknown"
}

// isV6 reports whether the kind holds IPv6 keys.
func (k setKind) isV6() bool { return k == kindV6 || k == kindNet6 }

// isNet reports whether the kind is an interval (prefix) set.
func (k setKind) isNet() bool { return k == kindNet4 || k == kindNet6 }

// parseKind is the inverse of setKind.String.
func parseKind(s string) (setKind, bool) {
	for k := setKind(0); k < numKinds; k++ {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// connKind is one of the sets a jail with a connection limit owns. Their
// names carry no generation: they are kept across Reconcile.
type connKind int

const (
	connMeter4 connKind = iota // per-source token buckets, IPv4
	connMeter6                 // per-source token buckets, IPv6
	connFlood4                 // sources over the limit (ConnLimit.Ban), IPv4
	connFlood6                 // sources over the limit (ConnLimit.Ban), IPv6
	numConnKinds
)

// String returns the kind's token in set names.
func (k connKind) String() string {
	switch k {
	case connMeter4:
		return "meter4"
	case connMeter6:
		return "meter6"
	case connFlood4:
		return "flood4"
	case connFlood6:
		return "flood6"
	}
	return "unknown"
}

// isV6 reports whether the kind holds IPv6 keys.
func (k connKind) isV6() bool { return k == connMeter6 || k == connFlood6 }

// isFlood reports whether the kind is a flood (ban) set.
func (k connKind) isFlood() bool { return k == connFlood4 || k == connFlood6 }

// connSetName names a jail's connection-limit set, "<jail>_meter4" etc.
// It cannot clash with a generation set's name, which ends in digits after
// the last '_'.
func connSetName(jail string, k connKind) string {
	return jail + "_" + k.String()
}

// maxJailName keeps "<jail>_net4_<gen>" within the kernel's 255-byte limit
// for set names.
const maxJailName = 200

var jailNameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// setName names the set of a jail's kind at a generation.
func setName(jail string, k setKind, gen uint64) string {
	return jail + "_" + k.String() + "_" + strconv.FormatUint(gen, 10)
}

// parsedName is a set name split back into its parts.
type parsedName struct {
	jail string
	kind setKind
	gen  uint64
}

// parseSetName splits a name made by setName. Jail names may contain '_',
// so it parses from the right.
func parseSetName(name string) (parsedName, bool) {
	i := strings.LastIndexByte(name, '_')
	if i <= 0 {
		return parsedName{}, false
	}
	gen, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil {
		return parsedName{}, false
	}
	rest := name[:i]
	j := strings.LastIndexByte(rest, '_')
	if j <= 0 {
		return parsedName{}, false
	}
	k, ok := parseKind(rest[j+1:])
	if !ok {
		return parsedName{}, false
	}
	return parsedName{jail: rest[:j], kind: k, gen: gen}, true
}

// validateJails checks names and uniqueness of a jail list.
func validateJails(jails []firewall.Jail) error {
	seen := make(map[string]bool, len(jails))
	for _, j := range jails {
		if len(j.Name) > maxJailName || !jailNameRE.MatchString(j.Name) {
			return fmt.Errorf("invalid jail name %q (want [a-z0-9_-], at most %d bytes)", j.Name, maxJailName)
		}
		if seen[j.Name] {
			return fmt.Errorf("duplicate jail %q", j.Name)
		}
		seen[j.Name] = true
		for _, p := range j.Ports {
			if p == 0 {
				return fmt.Errorf("jail %q: port 0", j.Name)
			}
		}
		if j.ConnLimit != nil {
			if err := j.ConnLimit.Validate(); err != nil {
				return fmt.Errorf("jail %q: %w", j.Name, err)
			}
		}
	}
	return nil
}
