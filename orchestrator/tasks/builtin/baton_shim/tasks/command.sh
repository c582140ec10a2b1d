#!/bin/sh
# Baton's plan `command` steps: runs PT_command with /bin/sh, its exit code the task's.
exec /bin/sh -c "$PT_command"
