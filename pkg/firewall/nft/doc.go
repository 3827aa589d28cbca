// Package nft is the nftables firewall backend. It talks to the kernel over
// netlink through github.com/google/nftables and never runs the nft tool.
//
// The backend owns exactly one table, "inet <Table>" (default "banwatch"),
// and touches nothing outside it. Each jail gets four sets, named
// "<jail>_<kind>_<generation>":
//
//	<jail>_v4_<gen>    ipv4_addr, flags timeout            (single IPv4 addresses)
//	<jail>_v6_<gen>    ipv6_addr, flags timeout            (single IPv6 addresses)
//	<jail>_net4_<gen>  ipv4_addr, flags interval,timeout   (wider IPv4 prefixes)
//	<jail>_net6_<gen>  ipv6_addr, flags interval,timeout   (wider IPv6 prefixes)
//
// and four rules in the base chain "input" (type filter, hook input,
// priority -10, policy accept), one per set:
//
//	meta l4proto tcp th dport { ports } ip saddr @<set> counter drop
//
// or, for a jail without ports, "ip saddr @<set> counter drop" (ip6 saddr
// for the IPv6 sets). The generation changes when Reconcile fills fresh sets
// and swaps the rules over to them in one transaction.
//
// A jail with a connection limit (firewall.ConnLimit) has two more sets,
// and two more again if it bans flooders (ConnLimit.Ban). They carry no
// generation and are kept across Reconcile:
//
//	<jail>_meter4  ipv4_addr, flags dynamic,timeout, size 65535  (per-source token buckets)
//	<jail>_meter6  ipv6_addr, flags dynamic,timeout, size 65535
//	<jail>_flood4  ipv4_addr, flags dynamic,timeout, size 65535  (sources over the limit)
//	<jail>_flood6  ipv6_addr, flags dynamic,timeout, size 65535
//
// After its four ban rules, such a jail has one drop rule per flood set,
// like those of the ban sets, then one rule per meter:
//
//	meta l4proto tcp th dport { ports } ct state new
//	    update @<jail>_meter4 { ip saddr timeout <t> limit rate over <rate>/<unit> burst <burst> packets }
//	    [update @<jail>_flood4 { ip saddr timeout <ban timeout> }] counter drop
//
// ("meta l4proto tcp ct state new ..." for a jail without ports). The
// kernel keeps a bucket per source, created full when the source is first
// seen; the limit ends the rule for connections within the rate, so only
// those over it are dropped, and with Ban put into the flood set, whose
// drop rule then bars the source from the jail's ports for the ban timeout.
// Elements are added and refreshed by packets; their timeouts come from
// the rules, so a changed limit changes rules only. The meter timeout t
// (each new connection restarts it) is at least a minute, the limit's unit,
// and the time a bucket takes to refill, so a forgotten source gains
// nothing. Setup empties a jail's meters when its rate, unit or burst
// change (elements keep the limit they were created with), and on its
// first call. Flood sets are only emptied by expiry, by Remove (which
// deletes single addresses from them too), or by deleting the set when its
// jail stops banning; Floods reads them back, since they stay small, so
// the daemon can record those bans. Meter sets are never read back.
//
// Element expiry is left to the kernel (element timeouts). The address sets
// are plain hash sets, which take bulk inserts far faster than interval sets.
// The prefix sets are interval sets and cannot hold overlapping intervals,
// so the backend keeps its own small model of each jail's prefixes and loads
// a non-overlapping cover into the kernel. Where prefixes nest, each address
// is banned until the latest expiry of the prefixes that cover it. Set
// elements are never read back from the kernel.
//
// Elements are sent in messages of at most 60,000 bytes of elements (a
// netlink attribute holds 64 KiB, and longer ones are silently truncated
// on the way) and batches of at most 1 MiB, one transaction each. Since
// Linux 6.12 re-adding an element replaces its timeout; on older kernels
// (found out by a probe in the first Setup) Add re-adds by adding, deleting
// and adding each chunk in one transaction. Remove adds and deletes in one
// transaction, because deleting an absent element fails the transaction.
//
// Watch subscribes to nftables notifications and tells the backend's own
// changes from others' by the netlink port ID of its socket.
//
// Where nftables cannot be used at all, the kernel's error is returned
// with what to change, and wraps firewall.ErrUnavailable: EPERM (no
// CAP_NET_ADMIN in the network namespace: a user other than root, a
// container, a capability bounding set without it), EPROTONOSUPPORT when
// the socket is opened (a kernel without nfnetlink), EOPNOTSUPP for the
// first batch (nfnetlink without nf_tables). Such a kernel answers a whole
// batch with one error, while google/nftables waits for an answer to each
// message; so every request gives the kernel 30 seconds to answer, and
// fails after that rather than waiting forever.
package nft
