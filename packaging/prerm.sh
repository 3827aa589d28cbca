#!/bin/sh
# banwatch prerm: stop the daemon before its files go. Its bans stay in the
# kernel until they expire (or the table is deleted: nft delete table inet
# banwatch).
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	systemctl disable --now banwatchd.service >/dev/null 2>&1 || true
fi
exit 0
