package config

import (
	"strings"
	"testing"
)

// bcrypt hashes of "s3cret-pw": of cost 10 with the $2y$ prefix htpasswd
// -nbB writes, and of cost 4 as Go's bcrypt writes it ($2a$).
const (
	hashY10 = "$2y$10$eoZ2xr.Jx9JNV3zkFG4lsOKbcKnhV9Jjp.G9X3Z/.zE1swNt4QsoO"
	hashA04 = "$2a$04$uPeA2NmXfmtw2eZJoAg09e4S/.38V6Qu8cWfL2FIgaUPtm48rzvpG"
	// As mkpasswd -m bcrypt -R 10 writes it (Debian's whois package).
	hashB10 = "$2b$10$7zaA/90f.mRJa01XAaOnfOV1M.0qhnAxa05fvrNRf.D4X0wvt9yga"
)

// hashSalt is the part of the hashes that no error may show.
const hashSalt = "eoZ2xr.Jx9JNV3zkFG4ls"

func TestWebInvalid(t *testing.T) {
	cases := []struct{ doc, err string }{
		{"[web]\nuser = \"admin\"\n", `banwatch.toml:2: web.user: needs listen = "HOST:PORT" (the page is off without it)`},
		{"[web]\nlisten = \"\"\npassword_hash = \"" + hashY10 + "\"\n", `banwatch.toml:3: web.password_hash: needs listen = "HOST:PORT"`},
		{"[web]\nlisten = \"127.0.0.1:8425\"\npassword = \"s3cret-pw\"\n",
			`banwatch.toml:3: web.password: unknown key (known in [web]: listen, user, password_hash)`},
		{"[webs]\nlisten = \"127.0.0.1:8425\"\n", `banwatch.toml:1: webs: unknown table (banwatch.toml holds [daemon], [notify], [cluster] and [web])`},
		{"web = \"127.0.0.1:8425\"\n", `banwatch.toml:1: web: type mismatch`},
		{"[web]\nlisten = 8425\n", `banwatch.toml:2: web.listen: incompatible types`},

		{"[web]\nlisten = \"8425\"\n", `banwatch.toml:2: web.listen: "8425": want HOST:PORT, such as "127.0.0.1:9631"`},
		{"[web]\nlisten = \"www.example.org:80\"\n", `web.listen: "www.example.org:80": the host must be an IP address or localhost`},
		{"[web]\nlisten = \"127.0.0.1:http\"\n", `web.listen: "127.0.0.1:http": the port must be a number from 0 to 65535`},
		{"[daemon]\nmetrics = \"127.0.0.1:9631\"\n[web]\nlisten = \"127.0.0.1:9631\"\n",
			`banwatch.toml:4: web.listen: "127.0.0.1:9631" is [daemon] metrics' address too: give the page its own`},
		{"[daemon]\nmetrics = \":9631\"\n[web]\nlisten = \"[::1]:9631\"\n", `web.listen: "[::1]:9631" is [daemon] metrics' address too`},

		// Authentication: both or neither, a bcrypt hash that is never shown.
		{"[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"admin\"\n", `banwatch.toml:3: web.user: user needs password_hash (a bcrypt hash of the password)`},
		{"[web]\nlisten = \"127.0.0.1:8425\"\n\npassword_hash = \"" + hashY10 + "\"\n", `banwatch.toml:4: web.password_hash: password_hash needs user`},
		{"[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"admin\"\npassword_hash = \"s3cret-pw\"\n",
			`banwatch.toml:4: web.password_hash: not a bcrypt hash ("$2b$10$" and 53 characters): make one with mkpasswd -m bcrypt -R 10, or htpasswd -nbBC 10 USER PASSWORD (after the colon)`},
		{"[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"admin\"\npassword_hash = \"{SHA}" + hashSalt + "\"\n", `web.password_hash: not a bcrypt hash`},
		{"[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"admin\"\npassword_hash = \"" + hashY10 + "x\"\n", `web.password_hash: not a bcrypt hash`},
		{"[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"admin\"\npassword_hash = \"admin:" + hashY10 + "\"\n", `web.password_hash: not a bcrypt hash`},
		{"[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"admin\"\npassword_hash = \"" + strings.Replace(hashY10, "$10$", "$03$", 1) + "\"\n",
			`web.password_hash: not a bcrypt hash`},
		{"[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"admin\"\npassword_hash = \"" + strings.Replace(hashY10, "$10$", "$15$", 1) + "\"\n",
			`banwatch.toml:4: web.password_hash: bcrypt cost 15: want 4 to 14`},
		{"[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"ad:min\"\npassword_hash = \"" + hashY10 + "\"\n",
			`banwatch.toml:3: web.user: "ad:min": want 1 to 64 characters, without ':' or control characters`},
		{"[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"\"\npassword_hash = \"" + hashY10 + "\"\n", `web.user: "": want 1 to 64`},
		{"[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"ad\\tmin\"\npassword_hash = \"" + hashY10 + "\"\n", `web.user: "ad\tmin": want 1 to 64`},
	}
	for _, c := range cases {
		t.Run(c.err, func(t *testing.T) {
			err := expectRefused(t, c.doc, c.err)
			if strings.Contains(err.Error(), hashSalt) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%q: the error shows the password or its hash: %s", c.doc, err)
			}
		})
	}
}

func TestWebValid(t *testing.T) {
	cases := []struct {
		name, doc string
		want      Web
		auth      bool
		loopback  bool
	}{
		{"none", "", Web{}, false, false},
		{"empty table", "[web]\n", Web{}, false, false},
		{"off", "[web]\nlisten = \"\"\n", Web{}, false, false},
		{"loopback", "[web]\nlisten = \"127.0.0.1:8425\"\n", Web{Listen: "127.0.0.1:8425"}, false, true},
		{"localhost", "[web]\nlisten = \"localhost:8425\"\n", Web{Listen: "localhost:8425"}, false, true},
		{"ipv6 loopback", "[web]\nlisten = \"[::1]:8425\"\n", Web{Listen: "[::1]:8425"}, false, true},
		{"every interface", "[web]\nlisten = \":8425\"\n", Web{Listen: ":8425"}, false, false},
		{"lan", "[web]\nlisten = \"192.0.2.10:443\"\n", Web{Listen: "192.0.2.10:443"}, false, false},
		{"auth", "[web]\nlisten = \"0.0.0.0:8425\"\nuser = \"admin\"\npassword_hash = \"" + hashY10 + "\"\n",
			Web{Listen: "0.0.0.0:8425", User: "admin", PasswordHash: hashY10}, true, false},
		{"go hash", "[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"Zoë Ops\"\npassword_hash = '" + hashA04 + "'\n",
			Web{Listen: "127.0.0.1:8425", User: "Zoë Ops", PasswordHash: hashA04}, true, true},
		{"mkpasswd hash", "[web]\nlisten = \"127.0.0.1:8425\"\nuser = \"admin\"\npassword_hash = \"" + hashB10 + "\"\n",
			Web{Listen: "127.0.0.1:8425", User: "admin", PasswordHash: hashB10}, true, true},
		{"beside metrics", "[daemon]\nmetrics = \"127.0.0.1:9631\"\n[web]\nlisten = \"127.0.0.1:8425\"\n", Web{Listen: "127.0.0.1:8425"}, false, true},
		{"both free ports", "[daemon]\nmetrics = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:0\"\n", Web{Listen: "127.0.0.1:0"}, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadBanwatchTOML(t, c.doc)
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Daemon.Web
			if !got.Equal(&c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			if got.Enabled() != (c.want.Listen != "") {
				t.Errorf("Enabled() = %v", got.Enabled())
			}
			if got.Auth() != c.auth {
				t.Errorf("Auth() = %v, want %v", got.Auth(), c.auth)
			}
			if got.Loopback() != c.loopback {
				t.Errorf("Loopback() = %v, want %v", got.Loopback(), c.loopback)
			}
		})
	}
}
