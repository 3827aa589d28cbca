//go:build linux

package nft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

var (
	_ firewall.Backend       = (*Backend)(nil)
	_ firewall.Watcher       = (*Backend)(nil)
	_ firewall.FloodReporter = (*Backend)(nil)
)

// chainName is the name of the backend's base chain.
const chainName = "input"

// defaultSendBuf is Linux's default netlink send buffer (net.core.wmem_default),
// assumed if the actual size cannot be read.
const defaultSendBuf = 212992

// chainPriority runs the chain before the usual filter chains (priority 0).
const chainPriority = -10

// Backend is the nftables firewall backend. Create it with New. Its methods
// follow firewall.Backend: not safe for concurrent use, except Watch, which
// may run in its own goroutine alongside the others.
type Backend struct {
	log   *slog.Logger
	netns int
	table *nftables.Table
	chain *nftables.Chain

	conn    *nftables.Conn // lasting connection for all changes and queries
	nl      *netlink.Conn  // its socket, for read deadlines
	sendBuf int            // its send buffer: the largest batch it can send

	// nativeRefresh is true when re-adding an element replaces its timeout
	// (Linux 6.12 and later); otherwise Add deletes and re-adds in one batch.
	nativeRefresh bool
	probed        bool

	jails  []firewall.Jail       // as given to Setup, in order
	state  map[string]*jailState // by jail name
	gen    uint64                // highest set generation in use
	broken bool                  // a change failed half way; Check fails until Reconcile
	stale  bool                  // sets adopted from an earlier process; prefix model unknown

	mu       sync.Mutex        // guards the fields below (shared with Watch)
	ownPIDs  [2]uint32         // netlink port IDs of our socket: current, previous
	monitors map[*monitor]bool // active Watch sockets, to update their filters
}

// jailState is the backend's record of one jail's sets.
type jailState struct {
	jail firewall.Jail
	gen  uint64
	sets [numKinds]*nftables.Set
	nets [2]*netState // prefix models: [0] IPv4, [1] IPv6

	// conn are the connection-limit sets, by connKind: the meters if the
	// jail has a ConnLimit, the flood sets too if it bans; nil otherwise.
	conn [numConnKinds]*nftables.Set
}

// netOf returns the prefix model of an interval set kind.
func (j *jailState) netOf(k setKind) *netState {
	if k == kindNet6 {
		return j.nets[1]
	}
	return j.nets[0]
}

// New returns a backend that owns the table "inet <opts.Table>". It opens a
// netlink socket but changes nothing until Setup.
func New(logger *slog.Logger, opts Options) (*Backend, error) {
	if logger == nil {
		return nil, errors.New("nft: nil logger")
	}
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	if len(opts.Table) > 255 || strings.ContainsRune(opts.Table, 0) {
		return nil, fmt.Errorf("nft: invalid table name %q", opts.Table)
	}
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: opts.Table}
	b := &Backend{
		log:      logger.With("component", "nft", "table", opts.Table),
		netns:    opts.NetNSFd,
		table:    table,
		chain:    newChain(table),
		state:    map[string]*jailState{},
		monitors: map[*monitor]bool{},
	}
	if err := b.dial(); err != nil {
		return nil, fmt.Errorf("nft: %w", explain(err))
	}
	return b, nil
}

// newChain describes the backend's base chain.
func newChain(t *nftables.Table) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name:     chainName,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookInput,
		Priority: nftables.ChainPriorityRef(chainPriority),
		Policy:   &accept,
	}
}

// Close releases the netlink socket. It does not remove the table: bans
// stay in force (and expire) while the daemon is down.
func (b *Backend) Close() error {
	if b.conn == nil {
		return nil
	}
	err := b.conn.CloseLasting()
	b.conn = nil
	if err != nil {
		return fmt.Errorf("nft: close: %w", err)
	}
	return nil
}

// connection returns the lasting connection, dialling again after a Close
// or a failed batch. The kernel is given answerTimeout from now to answer
// what is sent on it.
func (b *Backend) connection() (*nftables.Conn, error) {
	if b.conn == nil {
		if err := b.dial(); err != nil {
			return nil, err
		}
	}
	b.expectAnswer()
	return b.conn, nil
}

// Setup creates the table, the jails' sets and the chain, or brings them in
// line with a changed jail list: sets of new jails are created, those of
// jails no longer listed deleted with their rules, and the sets of jails that
// stay keep their elements. The chain's rules are rebuilt in the same
// transaction. On the first call, sets left by an earlier process are adopted
// so that bans stay in force until the next Reconcile.
//
// Connection-limit sets are created or deleted as jails gain or lose a
// ConnLimit (flood sets as they gain or lose ConnLimit.Ban). A jail's meters
// are emptied when its rate, unit or burst changed, and on the first call,
// so that every source is measured by the new limit at once (each starts
// with a full bucket); otherwise they keep their state. Flood sets keep
// their elements; a changed ConnLimit.BanTimeout applies to new ones.
func (b *Backend) Setup(ctx context.Context, jails []firewall.Jail) (err error) {
	defer func() { err = explain(err) }()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nft: setup: %w", err)
	}
	if err := validateJails(jails); err != nil {
		return fmt.Errorf("nft: setup: %w", err)
	}
	if err := b.probe(); err != nil {
		return fmt.Errorf("nft: setup: %w", err)
	}
	existing, err := b.listSets()
	if err != nil {
		return fmt.Errorf("nft: setup: %w", err)
	}
	first := b.jails == nil
	if first {
		b.adopt(jails, existing)
	}
	next := make(map[string]*jailState, len(jails))
	resetMeters := map[string]bool{}
	for _, j := range cloneJails(jails) {
		if old, ok := b.state[j.Name]; first || !ok || !sameLimit(old.jail.ConnLimit, j.ConnLimit) {
			resetMeters[j.Name] = true
		}
		next[j.Name] = b.keepOrCreate(j, existing)
	}
	if err := b.commitLayout(jails, next, existing, resetMeters); err != nil {
		return fmt.Errorf("nft: setup: %w", err)
	}
	b.jails = cloneJails(jails)
	b.state = next
	b.log.Info("nftables set up", "jails", len(jails), "generation", b.gen)
	return nil
}

// keepOrCreate returns the state for a jail: the current one if its sets are
// all in the kernel, else the current one with the missing sets to be
// recreated (empty), else a new one at a fresh generation.
func (b *Backend) keepOrCreate(j firewall.Jail, existing map[string]*nftables.Set) *jailState {
	st, ok := b.state[j.Name]
	if !ok {
		b.gen++
		return b.newJailState(j, b.gen)
	}
	st.jail = j
	st.conn = b.newConnSets(j)
	for k := setKind(0); k < numKinds; k++ {
		if _, ok := existing[st.sets[k].Name]; ok {
			continue
		}
		b.log.Warn("set missing, recreating it empty", "set", st.sets[k].Name)
		if k.isNet() {
			*st.netOf(k) = *newNetState()
		}
	}
	return st
}

// newJailState describes a jail's four sets at a generation.
func (b *Backend) newJailState(j firewall.Jail, gen uint64) *jailState {
	st := &jailState{jail: j, gen: gen, nets: [2]*netState{newNetState(), newNetState()}}
	for k := setKind(0); k < numKinds; k++ {
		st.sets[k] = b.newSet(j.Name, k, gen)
	}
	st.conn = b.newConnSets(j)
	return st
}

// newSet describes one of a jail's sets.
func (b *Backend) newSet(jail string, k setKind, gen uint64) *nftables.Set {
	keyType := nftables.TypeIPAddr
	if k.isV6() {
		keyType = nftables.TypeIP6Addr
	}
	return &nftables.Set{
		Table:        b.table,
		Name:         setName(jail, k, gen),
		KeyType:      keyType,
		KeyByteOrder: binaryutil.BigEndian,
		HasTimeout:   true,
		Interval:     k.isNet(),
	}
}

// adopt takes over, for each configured jail, the newest complete
// generation of its sets found in the kernel (left by an earlier process).
// The prefix model of adopted sets is unknown, so Check reports false until
// the next Reconcile.
func (b *Backend) adopt(jails []firewall.Jail, existing map[string]*nftables.Set) {
	for _, j := range jails {
		gen, ok := newestComplete(j.Name, existing)
		if !ok {
			continue
		}
		st := b.newJailState(j, gen)
		b.state[j.Name] = st
		b.gen = max(b.gen, gen)
		b.stale = true
		b.log.Info("adopted sets from an earlier run", "jail", j.Name, "generation", gen)
	}
	for name := range existing {
		if p, ok := parseSetName(name); ok {
			b.gen = max(b.gen, p.gen)
		}
	}
}

// newestComplete finds the highest generation for which all four sets of a
// jail exist with the expected types.
func newestComplete(jail string, existing map[string]*nftables.Set) (uint64, bool) {
	count := map[uint64]int{}
	for name, s := range existing {
		p, ok := parseSetName(name)
		if ok && p.jail == jail && setMatches(s, p.kind) {
			count[p.gen]++
		}
	}
	var best uint64
	found := false
	for gen, n := range count {
		if n == int(numKinds) && (!found || gen > best) {
			best, found = gen, true
		}
	}
	return best, found
}

// setMatches checks the type and flags of a set found in the kernel.
func setMatches(s *nftables.Set, k setKind) bool {
	want := nftables.TypeIPAddr.Bytes
	if k.isV6() {
		want = nftables.TypeIP6Addr.Bytes
	}
	return s.KeyType.Bytes == want && s.HasTimeout && s.Interval == k.isNet()
}

// commitLayout makes table, chain, sets and rules match next in one
// transaction, deleting every other named set in the table. Connection-limit
// sets that exist are kept, those of the jails in resetMeters emptied if
// meters; one of the wrong type is replaced.
func (b *Backend) commitLayout(jails []firewall.Jail, next map[string]*jailState, existing map[string]*nftables.Set, resetMeters map[string]bool) error {
	c, err := b.connection()
	if err != nil {
		return err
	}
	c.AddTable(b.table)
	c.AddChain(b.chain)
	// Flushed first: the rules must let go of sets deleted below.
	c.FlushChain(b.chain)
	keep := map[string]bool{}
	for _, j := range jails {
		for _, s := range next[j.Name].sets {
			keep[s.Name] = true
			if _, ok := existing[s.Name]; !ok {
				if err := c.AddSet(s, nil); err != nil {
					return fmt.Errorf("add set %s: %w", s.Name, err)
				}
			}
		}
		if err := b.queueConnSets(c, next[j.Name], existing, resetMeters[j.Name], keep); err != nil {
			return err
		}
	}
	if err := b.queueRules(c, jails, next); err != nil {
		return err
	}
	for name, s := range existing {
		if !keep[name] {
			c.DelSet(s)
		}
	}
	return b.flush("layout")
}

// listSets returns the named sets of the table by name; none if the table
// does not exist. Anonymous sets (bound to rules) are left out.
func (b *Backend) listSets() (map[string]*nftables.Set, error) {
	ok, err := b.tableExists()
	if err != nil || !ok {
		return map[string]*nftables.Set{}, err
	}
	c, err := b.connection()
	if err != nil {
		return nil, err
	}
	sets, err := c.GetSets(b.table)
	if err != nil {
		b.resetConn()
		return nil, fmt.Errorf("list sets: %w", err)
	}
	out := make(map[string]*nftables.Set, len(sets))
	for _, s := range sets {
		if !s.Anonymous && !strings.HasPrefix(s.Name, "__") {
			s.Table = b.table
			out[s.Name] = s
		}
	}
	return out, nil
}

// findTable returns the kernel's view of the table, or nil if it does not
// exist.
func (b *Backend) findTable() (*nftables.Table, error) {
	c, err := b.connection()
	if err != nil {
		return nil, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		b.resetConn()
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == b.table.Name {
			return t, nil
		}
	}
	return nil, nil
}

// tableExists reports whether the table is in the kernel.
func (b *Backend) tableExists() (bool, error) {
	t, err := b.findTable()
	return t != nil, err
}

// Check reports whether the table, every expected set, and the chain with
// exactly the expected rules are in place. It never reads set elements. It
// also reports false after a change failed half way, and after sets were
// adopted from an earlier process, until the next Reconcile.
func (b *Backend) Check(ctx context.Context) (ok bool, err error) {
	defer func() { err = explain(err) }()
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("nft: check: %w", err)
	}
	if b.jails == nil || b.broken || b.stale {
		return false, nil
	}
	ok, why, err := b.check()
	if err != nil {
		return false, fmt.Errorf("nft: check: %w", err)
	}
	if !ok {
		b.log.Warn("nftables check failed", "reason", why)
	}
	return ok, nil
}

// check does the work of Check; why says what is missing.
func (b *Backend) check() (ok bool, why string, err error) {
	t, err := b.findTable()
	if err != nil || t == nil {
		return false, "table missing", err
	}
	if dormant(t.Flags) {
		return false, "table dormant", nil
	}
	if ok, err := b.chainExists(); err != nil || !ok {
		return false, "chain missing", err
	}
	sets, err := b.listSets()
	if err != nil {
		return false, "", err
	}
	for _, st := range b.state {
		for _, s := range st.allSets() {
			if _, ok := sets[s.Name]; !ok {
				return false, "set missing: " + s.Name, nil
			}
		}
	}
	return b.checkRules()
}

// dormant reports whether table flags mark a dormant (disabled) table.
// google/nftables v0.3.0 decodes NFTA_TABLE_FLAGS in host byte order
// instead of network order, so both placements of the bit are accepted.
func dormant(flags uint32) bool {
	const swapped = unix.NFT_TABLE_F_DORMANT << 24
	return flags&(unix.NFT_TABLE_F_DORMANT|swapped) != 0
}

// chainExists reports whether the base chain is in the table.
func (b *Backend) chainExists() (bool, error) {
	c, err := b.connection()
	if err != nil {
		return false, err
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		b.resetConn()
		return false, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == b.table.Name && ch.Name == chainName && ch.Hooknum != nil {
			return true, nil
		}
	}
	return false, nil
}

// resetConn drops the lasting connection after an error, so that no stale
// reply can be taken for the answer to a later request.
func (b *Backend) resetConn() {
	if b.conn != nil {
		_ = b.conn.CloseLasting()
		b.conn = nil
	}
}

// flush sends the queued batch. On failure the connection is replaced, as
// replies to the failed batch may still be queued on it.
func (b *Backend) flush(what string) error {
	b.expectAnswer()
	if err := b.conn.Flush(); err != nil {
		b.resetConn()
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// dial opens the lasting netlink connection and records its port ID, so
// that Watch can tell our own changes from others'.
func (b *Backend) dial() error {
	var nl *netlink.Conn
	c, err := nftables.New(
		nftables.AsLasting(),
		nftables.WithNetNSFd(b.netns),
		nftables.WithSockOptions(func(c *netlink.Conn) error {
			nl = c
			return tuneSocket(c)
		}),
	)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	pid, err := portID(nl)
	if err != nil {
		_ = c.CloseLasting()
		return err
	}
	b.conn, b.nl = c, nl
	b.sendBuf = sendBuffer(nl)
	if b.sendBuf <= 0 {
		b.sendBuf = defaultSendBuf
	}
	b.setOwnPID(pid)
	return nil
}

// cloneJails copies a jail list (deeply enough: ports and connection
// limits are copied too).
func cloneJails(jails []firewall.Jail) []firewall.Jail {
	out := make([]firewall.Jail, len(jails))
	for i, j := range jails {
		out[i] = firewall.Jail{Name: j.Name, Ports: slices.Clone(j.Ports)}
		if j.ConnLimit != nil {
			l := *j.ConnLimit
			out[i].ConnLimit = &l
		}
	}
	return out
}
