// Package event defines what a filter extracts from a log line: the client
// address, the kind of misbehaviour (or success) and the line's own time.
//
// The vocabulary of kinds is deliberately small and shared by every filter, so
// that a jail can weigh "an authentication failure" the same way whether
// Postfix, Exim, Dovecot or IceWarp reported it.
package event

import (
	"net/netip"
	"time"
)

// Kind names what a log line says a client did.
type Kind string

// The event vocabulary. Filters may only use these kinds; see Known.
const (
	// AuthFailure: a login or SMTP AUTH attempt with wrong credentials,
	// an unknown user, or an aborted authentication exchange.
	AuthFailure Kind = "auth_failure"
	// AuthSuccess: a client authenticated. Never a strike; later issues use
	// it to learn which clients and fingerprints are legitimate.
	AuthSuccess Kind = "auth_success"
	// BadHELO: the MTA rejected the client's HELO/EHLO name (not a fully
	// qualified hostname, invalid syntax, not found, denied by policy).
	BadHELO Kind = "bad_helo"
	// Pregreet: the client talked before the server's greeting (Postfix
	// postscreen PREGREET, Exim "synchronization error" before the banner).
	Pregreet Kind = "pregreet"
	// ProtocolError: the client broke the protocol: improper pipelining,
	// non-SMTP commands, too many errors, bare newlines, command limits.
	ProtocolError Kind = "protocol_error"
	// RelayDenied: the client tried to relay through the server.
	RelayDenied Kind = "relay_denied"
	// RBLReject: the client was rejected or scored because a DNS block list
	// lists it.
	RBLReject Kind = "rbl_reject"
	// Rejected: the MTA rejected the client, its sender or its recipient by
	// policy (unknown recipient, client host rejected, sender rejected).
	Rejected Kind = "rejected"
	// Disconnect: the client dropped the connection early or hung up in the
	// middle of a test (lost connection after CONNECT, postscreen HANGUP).
	Disconnect Kind = "disconnect"
	// RateLimit: the client exceeded a connection or message rate limit of
	// the MTA.
	RateLimit Kind = "rate_limit"
)

// Known lists every kind in the vocabulary, in documentation order.
var Known = []Kind{
	AuthFailure, AuthSuccess, BadHELO, Pregreet, ProtocolError,
	RelayDenied, RBLReject, Rejected, Disconnect, RateLimit,
}

// Valid reports whether k is a kind of the vocabulary.
func (k Kind) Valid() bool { return k.Index() >= 0 }

// Index returns k's position in Known, or -1 for a kind outside the
// vocabulary: for counting kinds in an array.
func (k Kind) Index() int {
	for i, known := range Known {
		if k == known {
			return i
		}
	}
	return -1
}

// NumKinds is len(Known), for arrays indexed by Kind.Index.
const NumKinds = 10

// Event is one thing a log line says a client did.
type Event struct {
	// Time is the line's own timestamp. It is the zero time when the line
	// carried none that could be parsed; the consumer then decides (the
	// daemon uses the time it read the line).
	Time time.Time
	// Addr is the client address, never zero in an event a filter returns.
	// IPv4-mapped IPv6 addresses are unmapped to IPv4.
	Addr netip.Addr
	// Kind says what the client did.
	Kind Kind
	// Filter names the filter that matched.
	Filter string
	// Rule is the index of the matching rule in the filter file, from 0.
	Rule int
	// HELO is the HELO/EHLO name the line shows for the client, if the rule
	// captures one.
	HELO string
	// User is the user name the client tried, if the rule captures one.
	User string
}
