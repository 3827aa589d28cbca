# bash completion for banctl, generated from its manual page by internal/mangen (make man).
_banctl() {
	local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]}
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "status list ban unban history show top reload fingerprints forget import test" -- "$cur"))
		return
	fi
	case "$cmd" in
	status)
		COMPREPLY=($(compgen -W "--socket --json" -- "$cur"))
		;;
	list)
		COMPREPLY=($(compgen -W "--jail --ip --socket --json" -- "$cur"))
		;;
	ban)
		COMPREPLY=($(compgen -W "--jail --for --reason --force --socket --json" -- "$cur"))
		;;
	unban)
		COMPREPLY=($(compgen -W "--jail --all-jails --all --yes --socket --json" -- "$cur"))
		;;
	history)
		COMPREPLY=($(compgen -W "--jail --since --limit --chart --socket --json" -- "$cur"))
		;;
	show)
		COMPREPLY=($(compgen -W "--jail --limit --socket --json" -- "$cur"))
		;;
	top)
		COMPREPLY=($(compgen -W "--since --n --socket --json" -- "$cur"))
		;;
	reload)
		COMPREPLY=($(compgen -W "--socket --json" -- "$cur"))
		;;
	fingerprints)
		COMPREPLY=($(compgen -W "--jail --socket --json" -- "$cur"))
		;;
	forget)
		COMPREPLY=($(compgen -W "--jail --socket --json" -- "$cur"))
		;;
	import)
		if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "fail2ban" -- "$cur")); return; fi
		COMPREPLY=($(compgen -W "--db --jail --default-for --permanent-for --dry-run --socket --json" -- "$cur"))
		;;
	test)
		if [[ $cur != -* ]]; then COMPREPLY=($(compgen -f -- "$cur")); return; fi
		COMPREPLY=($(compgen -W "--filter --jail --config --top --no-progress --json" -- "$cur"))
		;;
	esac
}
complete -o default -F _banctl banctl
