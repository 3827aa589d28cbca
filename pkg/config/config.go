// Package config finds and loads banwatch's configuration: the filters and
// jails shipped inside the binary, and the files in the configuration
// directory that add to or override them.
//
// A file in DIR/filters named NAME.toml replaces the shipped filter NAME;
// other names add filters. Errors name the file and, where the TOML decoder
// or the validator can tell, the line.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/banwatch/banwatch"
	"github.com/banwatch/banwatch/pkg/filter"
)

// DefaultDir is where banwatch looks for its configuration.
const DefaultDir = "/etc/banwatch"

// filterSources reads the shipped filters and those in dir/filters, by name.
func filterSources(dir string) (map[string]source, error) {
	sources := map[string]source{}
	shipped, err := fs.Glob(banwatch.Defaults, "filters/*.toml")
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	for _, p := range shipped {
		data, err := banwatch.Defaults.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		sources[nameOf(p)] = source{file: "embedded:" + p, data: data}
	}
	if dir != "" {
		local, err := filepath.Glob(filepath.Join(dir, "filters", "*.toml"))
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		for _, p := range local {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("config: %w", err)
			}
			sources[nameOf(p)] = source{file: p, data: data}
		}
	}
	return sources, nil
}

// LoadFilters compiles the shipped filters and those in dir/filters (dir may
// be "" or not exist), sorted by name. A missing dir/filters is not an error;
// an unreadable one is.
func LoadFilters(dir string) ([]*filter.Filter, error) {
	sources, err := filterSources(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(sources))
	for n := range sources {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*filter.Filter, 0, len(names))
	var errs []error
	for _, n := range names {
		f, err := filter.Compile(n, sources[n].file, sources[n].data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, f)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// FindFilter returns the filter called nameOrPath: a path (it contains a
// slash or ends in .toml) is compiled from that file; a name is looked up
// among the filters LoadFilters(dir) gives.
func FindFilter(dir, nameOrPath string) (*filter.Filter, error) {
	if strings.ContainsRune(nameOrPath, '/') || strings.HasSuffix(nameOrPath, ".toml") {
		data, err := os.ReadFile(nameOrPath)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return filter.Compile(nameOf(nameOrPath), nameOrPath, data)
	}
	// Only the filter asked for is compiled: the others' errors are not
	// this caller's business, and compiling them all costs more than
	// reading a short log.
	sources, err := filterSources(dir)
	if err != nil {
		return nil, err
	}
	if src, ok := sources[nameOrPath]; ok {
		return filter.Compile(nameOrPath, src.file, src.data)
	}
	names := make([]string, 0, len(sources))
	for n := range sources {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("config: no filter %q (have: %s)", nameOrPath, strings.Join(names, ", "))
}

type source struct {
	file string
	data []byte
}

func nameOf(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".toml")
}
