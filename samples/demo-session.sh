#!/bin/sh
# A scripted session for `make demo`: what an operator might do on a gateway, with colour,
# UTF-8 and a pause, so the recording has something to show.
printf '\033[1;34m%s\033[0m\n' "sshrec demo session on $(uname -n)"
echo "user: $(id -un)   session id: ${SSHREC_SESSION_ID:-unknown}"
sleep 0.3
echo "$ ls /etc | head -5"
ls /etc | head -5
sleep 0.3
printf '%s\n' "$ printf 'caf\\303\\251 \\346\\227\\245\\346\\234\\254\\n'"
printf 'caf\303\251 \346\227\245\346\234\254\n'
echo "$ exit 0"
if [ -n "${SSHREC_DEMO_ID_FILE:-}" ]; then echo "$SSHREC_SESSION_ID" > "$SSHREC_DEMO_ID_FILE"; fi
