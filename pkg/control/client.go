package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"
)

// ErrUnreachable wraps the errors of a client that could not talk to the
// daemon at all (no socket, nobody listening, no permission).
var ErrUnreachable = errors.New("cannot reach banwatchd")

// Client talks to banwatchd over its control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client of the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression: true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// unreachable explains a failure to connect.
func (c *Client) unreachable(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w: is banwatchd running? socket %s not found", ErrUnreachable, c.path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: is banwatchd running? nobody answers on socket %s", ErrUnreachable, c.path)
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w: permission denied on socket %s (run as root, or as a member of the daemon's socket_group)", ErrUnreachable, c.path)
	}
	return fmt.Errorf("%w: socket %s: %v", ErrUnreachable, c.path, err)
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := "http://banwatchd" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.unreachable(err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(data))
		}
		return nil, &Error{Status: resp.StatusCode, Msg: e.Error}
	}
	return resp, nil
}

func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.do(ctx, method, path, nil, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("control: reading the answer: %w", err)
	}
	return nil
}

// Status asks for the daemon's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.call(ctx, http.MethodGet, "/v1/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Ban asks for a manual ban and returns the bans made.
func (c *Client) Ban(ctx context.Context, req BanRequest) ([]Ban, error) {
	var out BansReply
	err := c.call(ctx, http.MethodPost, "/v1/ban", req, &out)
	return out.Bans, err
}

// BulkBan asks for many bans at once; see BulkBanRequest.
func (c *Client) BulkBan(ctx context.Context, req BulkBanRequest) (*BulkBanReply, error) {
	var out BulkBanReply
	if err := c.call(ctx, http.MethodPost, "/v1/bulkban", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Unban asks to lift bans and returns the bans ended.
func (c *Client) Unban(ctx context.Context, req UnbanRequest) ([]Ban, error) {
	var out BansReply
	err := c.call(ctx, http.MethodPost, "/v1/unban", req, &out)
	return out.Bans, err
}

// Reload asks the daemon to load its configuration again; a refused
// configuration is an *Error naming its problems.
func (c *Client) Reload(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/v1/reload", struct{}{}, nil)
}

// List calls fn with each active ban of jail ("" all) whose prefix is
// inside or covers ip ("" all). raw is the ban's JSON line as the daemon
// sent it.
func (c *Client) List(ctx context.Context, jail, ip string, fn func(b *Ban, raw []byte) error) error {
	q := url.Values{}
	if jail != "" {
		q.Set("jail", jail)
	}
	if ip != "" {
		q.Set("ip", ip)
	}
	return c.stream(ctx, "/v1/bans", q, fn)
}

// History calls fn with bans active and ended, newest first; evidence
// asks for each ban's log lines.
func (c *Client) History(ctx context.Context, jail, ip string, since time.Time, limit int, evidence bool, fn func(b *Ban, raw []byte) error) error {
	q := url.Values{}
	if jail != "" {
		q.Set("jail", jail)
	}
	if ip != "" {
		q.Set("ip", ip)
	}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if evidence {
		q.Set("evidence", "1")
	}
	return c.stream(ctx, "/v1/history", q, fn)
}

func (c *Client) stream(ctx context.Context, path string, q url.Values, fn func(*Ban, []byte) error) error {
	resp, err := c.do(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.Equal(line, []byte(`{"end":true}`)) {
			return nil
		}
		var b Ban
		if err := json.Unmarshal(line, &b); err != nil {
			return fmt.Errorf("control: reading the answer: %w", err)
		}
		if err := fn(&b, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("control: reading the answer: %w", err)
	}
	return errors.New("control: the daemon's answer ended early")
}

// Fingerprints lists the learned fingerprints of jail ("" for all).
func (c *Client) Fingerprints(ctx context.Context, jail string) ([]Fingerprint, error) {
	path := "/v1/fingerprints"
	if jail != "" {
		path += "?jail=" + url.QueryEscape(jail)
	}
	var out FingerprintsReply
	err := c.call(ctx, http.MethodGet, path, nil, &out)
	return out.Fingerprints, err
}

// Forget drops a learned fingerprint; it returns those forgotten.
func (c *Client) Forget(ctx context.Context, req ForgetRequest) ([]Fingerprint, error) {
	var out FingerprintsReply
	err := c.call(ctx, http.MethodPost, "/v1/forget", req, &out)
	return out.Fingerprints, err
}

// Top asks for the largest counts among the bans begun since since (the
// zero time for all): at most n entries per list, 0 for DefaultTop.
func (c *Client) Top(ctx context.Context, since time.Time, n int) (*TopReply, error) {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if n != 0 {
		q.Set("n", strconv.Itoa(n))
	}
	var out TopReply
	if err := c.call(ctx, http.MethodGet, withQuery("/v1/top", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Hours asks for the bans (of jail, "" for all) and the events per hour
// from the hour of since (the zero time for all).
func (c *Client) Hours(ctx context.Context, since time.Time, jail string) (*HoursReply, error) {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if jail != "" {
		q.Set("jail", jail)
	}
	var out HoursReply
	if err := c.call(ctx, http.MethodGet, withQuery("/v1/hours", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// withQuery returns path with the query q, if any.
func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
