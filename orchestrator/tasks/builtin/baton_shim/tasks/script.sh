#!/bin/sh
# Baton's plan `script` steps: writes the script (PT_content, base64) to a private file and runs
# it with PT_arguments (shell words, each single-quoted by the orchestrator); its exit code is the task's.
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
printf '%s' "$PT_content" | base64 -d > "$dir/$PT_name" || exit 1
chmod 700 "$dir/$PT_name"
eval "set -- $PT_arguments"
"$dir/$PT_name" "$@"
