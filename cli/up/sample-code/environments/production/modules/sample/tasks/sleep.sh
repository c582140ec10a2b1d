#!/bin/sh
# sample::sleep — sleeps, then says so.
sleep "$PT_seconds"
echo "slept $PT_seconds seconds"
