#!/bin/sh
# banwatch postrm: on purge, the ban database and the configuration go too.
set -e
if [ "$1" = purge ]; then
	rm -rf /var/lib/banwatch
	rm -rf /etc/banwatch
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
