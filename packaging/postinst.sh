#!/bin/sh
# banwatch postinst: start the daemon with its embedded defaults under
# systemd, as Debian starts the services it installs. Without systemd
# running (a container, a chroot) nothing is started.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
	case "$1" in
	configure)
		if [ -z "$2" ]; then
			systemctl enable --now banwatchd.service || true
		else
			systemctl try-restart banwatchd.service || true
		fi
		;;
	esac
fi
exit 0
