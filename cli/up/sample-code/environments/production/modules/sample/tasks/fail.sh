#!/bin/sh
# sample::fail — always fails, to see what a failure looks like.
echo "this task always fails" >&2
exit 1
