#!/bin/sh
# sample::check — is this node ready for a change? Prints a JSON result; exits 1 when it is not.
min="${PT_min_free_mb:-100}"
free=$(df -Pk / | awk 'NR == 2 { print int($4 / 1024) }')
reason=""
[ "$free" -lt "$min" ] && reason="only ${free} MiB free on /, ${min} needed"
[ -e /etc/nologin ] && reason="/etc/nologin is present"
if [ -n "$reason" ]; then
  printf '{"ready": false, "free_mb": %s, "reason": "%s"}\n' "$free" "$reason"
  exit 1
fi
printf '{"ready": true, "free_mb": %s}\n' "$free"
