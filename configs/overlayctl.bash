# bash completion for overlayctl: install as
#   /usr/share/bash-completion/completions/overlayctl
# Commands and flags are read from overlayctl's own help, so they never go
# stale; peer names come from the file given with --file.

_overlayctl_peers() {
  # Peer names: the keys under `peers:` of the file given with --file.
  local file="" i
  for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do
    case ${COMP_WORDS[i]} in
      --file | -file) file=${COMP_WORDS[i + 1]} ;;
      --file=* | -file=*) file=${COMP_WORDS[i]#*=} ;;
    esac
  done
  [[ -r $file ]] || return
  awk '/^peers:/ { inpeers = 1; next }
       /^[^ #]/ { inpeers = 0 }
       inpeers && /^  [A-Za-z0-9-]+:/ { sub(/^  /, ""); sub(/:.*/, ""); print }' "$file"
}

_overlayctl() {
  local cur prev cmd
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD - 1]}
  if ((COMP_CWORD == 1)); then
    COMPREPLY=($(compgen -W "$(overlayctl -h 2>/dev/null | awk '/^commands:/ { c = 1; next } c && /^  [a-z]/ { print $1 } /^$/ && c { c = 0 }') help" -- "$cur"))
    return
  fi
  cmd=${COMP_WORDS[1]}
  case $prev in
    --file | -file | --private-key | -private-key | --key | -key | --trust | -trust | --sig | -sig | \
      --sign-key | -sign-key | --etcd-ca | -etcd-ca | --etcd-cert | -etcd-cert | --etcd-key | -etcd-key)
      COMPREPLY=($(compgen -f -- "$cur"))
      return ;;
    --control | -control)
      COMPREPLY=($(compgen -f -- "$cur"))
      return ;;
    --network | -network | --from | -from | --to | -to | --between | -between | \
      --name | -name | --prefix | -prefix | --faces | -faces | --port | -port | --ports | -ports | \
      --public-key | -public-key | --address | -address | --endpoint | -endpoint | \
      --keepalive | -keepalive | --node | -node | -c | --c | -i | --i | --timeout | -timeout)
      return ;;
    --self | -self)
      COMPREPLY=($(compgen -W "$(_overlayctl_peers)" -- "$cur"))
      return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(overlayctl "$cmd" -h 2>/dev/null | awk '/^  -[a-z]/ { print "-" $1 }')" -- "$cur"))
    return
  fi
  case $cmd in
    explain | show | remove-peer)
      COMPREPLY=($(compgen -W "$(_overlayctl_peers)" -- "$cur")) ;;
    help)
      COMPREPLY=($(compgen -W "$(overlayctl -h 2>/dev/null | awk '/^commands:/ { c = 1; next } c && /^  [a-z]/ { print $1 }')" -- "$cur")) ;;
  esac
}
complete -F _overlayctl overlayctl
