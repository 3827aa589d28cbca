package nft

// DefaultTable is the name of the inet table used when Options.Table is empty.
const DefaultTable = "banwatch"

// Options configures New.
type Options struct {
	// Table is the name of the inet table the backend owns; DefaultTable
	// if empty.
	Table string
	// NetNSFd, if not 0, is an open file descriptor of the network
	// namespace to work in (tests use it); 0 means the current namespace.
	NetNSFd int
}
