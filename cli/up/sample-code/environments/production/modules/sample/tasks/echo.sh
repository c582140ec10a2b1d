#!/bin/sh
# sample::echo — prints its message.
echo "$PT_message"
