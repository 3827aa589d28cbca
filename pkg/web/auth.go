package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"net/http"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// basicAuth checks HTTP basic authentication against one user name and a
// bcrypt hash of the password.
//
// bcrypt is slow by design (about 60 ms at cost 10), which a page that
// asks for several resources per view should not pay on every request:
// once a user name and password pass bcrypt, their SHA-256 is remembered,
// and later requests with the same pair are checked against it in
// constant time. Every other request pays bcrypt again, whether the user
// name is right or not (so that the time does not tell), one at a time:
// a guesser gets at most one core's worth of bcrypt, as slow as the hash's
// cost makes it, and cannot take the other core from the daemon.
type basicAuth struct {
	user [sha256.Size]byte // SHA-256 of the user name
	hash []byte            // the bcrypt hash
	good atomic.Pointer[[sha256.Size]byte]
	one  chan struct{} // a token per bcrypt run at once
}

// newBasicAuth checks the hash's form.
func newBasicAuth(user, hash string) (*basicAuth, error) {
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		// Not the hash: an error may be logged.
		return nil, errors.New("web: the password hash is not a bcrypt hash")
	}
	return &basicAuth{user: sha256.Sum256([]byte(user)), hash: []byte(hash), one: make(chan struct{}, 1)}, nil
}

// pairSum is the SHA-256 of a user name and password, each prefixed with
// its length so that no other pair has the same input.
func pairSum(user, password string) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	h.Write(n[:])
	h.Write([]byte(user))
	binary.BigEndian.PutUint64(n[:], uint64(len(password)))
	h.Write(n[:])
	h.Write([]byte(password))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// check reports whether r carries the right user name and password.
func (a *basicAuth) check(r *http.Request) bool {
	user, password, ok := r.BasicAuth()
	if !ok {
		return false
	}
	pair := pairSum(user, password)
	if g := a.good.Load(); g != nil && subtle.ConstantTimeCompare(g[:], pair[:]) == 1 {
		return true
	}
	select {
	case a.one <- struct{}{}:
	case <-r.Context().Done():
		return false
	}
	defer func() { <-a.one }()
	u := sha256.Sum256([]byte(user))
	userOK := subtle.ConstantTimeCompare(u[:], a.user[:]) == 1
	passwordOK := bcrypt.CompareHashAndPassword(a.hash, []byte(password)) == nil
	if userOK && passwordOK {
		a.good.Store(&pair)
		return true
	}
	return false
}
